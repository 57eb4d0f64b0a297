"""Measurements behind the README's numbers; each module runs with ``python -m``."""
