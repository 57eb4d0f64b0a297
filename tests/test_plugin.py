"""The pytest plugin works from the outside: a tiny user project's suite passes with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynaledger.testing import ServerChoice

USER_TEST = """
from decimal import Decimal


def test_a_credit(ledger):
    ledger.create_user("u1")
    ledger.transact(idempotency_key="k1", user_id="u1", amount="5", type="credit")
    assert Decimal("105") == ledger.get_user_balance("u1").amount


def test_tables_are_per_test(ledger):
    ledger.create_user("u1")  # would raise UserAlreadyExists if tables were shared
"""

PLAIN_TEST = """
import sys


def test_no_server_was_chosen_or_started():
    assert set() == {"docker", "moto", "testcontainers", "dynaledger.local"} & set(sys.modules)
"""

#: Runs pytest with some modules made unimportable, as if they were not installed.
WITHOUT = (
    "import sys; import pytest\n"
    "for name in filter(None, sys.argv[1].split(',')):\n"
    "    sys.modules[name] = None\n"
    "raise SystemExit(pytest.main(sys.argv[2:]))\n"
)

EMBEDDED = "dynaledger DynamoDB server: embedded endpoint (moto, in memory, serialized)"


def _run_user_suite(
    project: Path,
    test: str = USER_TEST,
    without: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
    **env: str,
) -> subprocess.CompletedProcess[str]:
    (project / "test_user.py").write_text(test)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DYNALEDGER_")}
    return subprocess.run(
        [sys.executable, "-c", WITHOUT, ",".join(without), "-p", "no:cacheprovider", *args,
         str(project)],
        capture_output=True, text=True, cwd=project, env={**clean, **env}, check=False,
    )  # fmt: skip


class TestPlugin:
    def test_a_users_suite_gets_a_migrated_ledger_per_test(
        self, tmp_path: Path, dynamodb_endpoint: str
    ) -> None:
        """With dynaledger installed, ``ledger`` needs no set-up; the run names the server."""
        done = _run_user_suite(tmp_path, DYNALEDGER_TEST_ENDPOINT=dynamodb_endpoint)
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 passed" in done.stdout
        expected = (
            f"dynaledger DynamoDB server: {dynamodb_endpoint} (from $DYNALEDGER_TEST_ENDPOINT)"
        )
        assert 1 == done.stdout.splitlines().count(expected), done.stdout

    def test_under_xdist_the_summary_names_the_workers_choice(
        self, tmp_path: Path, dynamodb_endpoint: str
    ) -> None:
        """With pytest-xdist (``-n 2``, every test on each worker) each worker chooses its
        server, and the summary says the choice once, with both workers."""
        done = _run_user_suite(
            tmp_path, args=("-n", "2", "--dist", "each"),
            DYNALEDGER_TEST_ENDPOINT=dynamodb_endpoint,
        )  # fmt: skip
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "4 passed" in done.stdout
        expected = (
            f"dynaledger DynamoDB server: {dynamodb_endpoint} (from $DYNALEDGER_TEST_ENDPOINT)"
            " (workers gw0, gw1)"
        )
        assert [expected] == [
            line for line in done.stdout.splitlines() if "DynamoDB server:" in line
        ], done.stdout

    def test_without_an_endpoint_the_plugin_starts_its_own_server(self, tmp_path: Path) -> None:
        """No endpoint and no Docker: the embedded endpoint serves the user's suite."""
        if os.environ.get("DYNALEDGER_TEST_IMAGE"):
            pytest.skip("the Docker lane chooses its own server")
        done = _run_user_suite(tmp_path)
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 passed" in done.stdout
        assert EMBEDDED in done.stdout.splitlines()

    def test_without_testcontainers_the_tests_run_on_the_embedded_endpoint(
        self, tmp_path: Path
    ) -> None:
        """``dynaledger[local]`` and pytest, no testcontainers: the tests run, none is skipped."""
        done = _run_user_suite(tmp_path, without=("testcontainers",))
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "2 passed" in done.stdout
        assert "skipped" not in done.stdout
        assert EMBEDDED in done.stdout.splitlines()

    def test_with_no_server_possible_the_tests_fail_saying_why(self, tmp_path: Path) -> None:
        """Neither testcontainers nor moto importable: both tests error with the remedy, loudly."""
        done = _run_user_suite(tmp_path, without=("testcontainers", "moto"))
        assert 1 == done.returncode, done.stdout + done.stderr
        assert "2 errors" in done.stdout
        assert (
            "dynaledger: no DynamoDB server for the tests: set DYNALEDGER_TEST_ENDPOINT to one, "
            "install dynaledger[test] with a Docker engine running, or install dynaledger[local] "
            "for the embedded endpoint"
        ) in done.stdout

    def test_a_suite_that_uses_no_fixture_starts_nothing(self, tmp_path: Path) -> None:
        """The server is chosen at the first fixture that needs it: never, here."""
        done = _run_user_suite(tmp_path, PLAIN_TEST)
        assert 0 == done.returncode, done.stdout + done.stderr
        assert "1 passed" in done.stdout
        assert "dynaledger DynamoDB server:" not in done.stdout

    def test_it_can_be_switched_off(self, tmp_path: Path, dynamodb_endpoint: str) -> None:
        """DYNALEDGER_PYTEST_PLUGIN=0: the fixtures fail naming the variable, never skip."""
        done = _run_user_suite(
            tmp_path, DYNALEDGER_TEST_ENDPOINT=dynamodb_endpoint, DYNALEDGER_PYTEST_PLUGIN="0"
        )
        assert 1 == done.returncode, done.stdout + done.stderr
        assert "2 errors" in done.stdout
        assert "the dynaledger pytest plugin is switched off (DYNALEDGER_PYTEST_PLUGIN=0)" in (
            done.stdout
        )
        assert "dynaledger DynamoDB server:" not in done.stdout

    def test_p_no_dynaledger_removes_the_fixtures(self, tmp_path: Path) -> None:
        """``-p no:dynaledger`` unloads the plugin: ``ledger`` is an unknown fixture."""
        (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:dynaledger\n")
        done = _run_user_suite(tmp_path)
        assert 1 == done.returncode, done.stdout + done.stderr
        assert "fixture 'ledger' not found" in done.stdout


class TestDockerLaneCheck:
    def test_the_line_the_docker_lane_greps_is_the_one_the_plugin_prints(self) -> None:
        """scripts/docker-lane fails unless the run names testcontainers and its image."""
        script = (Path(__file__).parent.parent / "scripts" / "docker-lane").read_text()
        (pattern,) = re.findall(r'grep -q "([^"]+)" "\$STATE/run.log"', script)
        image = "dynaledger-embedded:local"
        printed = f"dynaledger {ServerChoice('testcontainers', image).describe()}"
        assert pattern.replace("$IMAGE", image) in printed
