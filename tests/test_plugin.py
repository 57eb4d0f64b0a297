"""The pytest plugin works from the outside: a tiny user project's suite passes with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

USER_TEST = """
from decimal import Decimal


def test_a_credit(ledger):
    ledger.create_user("u1")
    ledger.transact(idempotency_key="k1", user_id="u1", amount="5", type="credit")
    assert Decimal("105") == ledger.get_user_balance("u1").amount


def test_tables_are_per_test(ledger):
    ledger.create_user("u1")  # would raise UserAlreadyExists if tables were shared
"""


def _run_user_suite(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (project / "test_user.py").write_text(USER_TEST)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DYNALEDGER_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        capture_output=True, text=True, cwd=project, env={**clean, **env}, check=False,
    )  # fmt: skip


class TestPlugin:
    def test_a_users_suite_gets_a_migrated_ledger_per_test(
        self, tmp_path: Path, dynamodb_endpoint: str
    ) -> None:
        """With the test extra installed, ``ledger`` needs no set-up in the user's project."""
        done = _run_user_suite(tmp_path, DYNALEDGER_TEST_ENDPOINT=dynamodb_endpoint)
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 passed" in done.stdout

    def test_without_an_endpoint_the_plugin_starts_its_own_server(self, tmp_path: Path) -> None:
        """No endpoint and no Docker: the embedded endpoint serves the user's suite."""
        if os.environ.get("DYNALEDGER_TEST_IMAGE"):
            pytest.skip("the Docker lane chooses its own server")
        done = _run_user_suite(tmp_path)
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 passed" in done.stdout

    def test_it_can_be_switched_off(self, tmp_path: Path, dynamodb_endpoint: str) -> None:
        """DYNALEDGER_PYTEST_PLUGIN=0 disables it: the fixtures skip instead of starting servers."""
        done = _run_user_suite(
            tmp_path, DYNALEDGER_TEST_ENDPOINT=dynamodb_endpoint, DYNALEDGER_PYTEST_PLUGIN="0"
        )
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 skipped" in done.stdout
