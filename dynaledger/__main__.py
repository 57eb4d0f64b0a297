"""``python -m dynaledger``: the command line."""

from dynaledger.cli import console

console()
