"""The benchmark runs end to end: its floors send what the library sends, so a change to
the library's requests that the hand-built floors miss fails here, not in ``make bench``."""

from __future__ import annotations

import pytest

from benchmarks import run


def test_a_tiny_run_of_the_benchmark_completes_and_reports_every_comparison(
    dynamodb_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 rounds, 1 thread, 1 credit per thread, nothing written: every table is printed."""
    argv = ["--endpoint", dynamodb_endpoint, "--rounds", "3", "--warmup", "1",
            "--threads", "1", "--per-thread", "1", "--no-write"]  # fmt: skip
    assert 0 == run.main(argv)
    printed = capsys.readouterr().out
    assert [True] * 4 == [
        line in printed
        for line in (
            "| transact vs transact_write_items |",
            "| transact vs hand-written transact_write_items (record computed per call) |",
            "| get_user_balance vs get_item |",
            "| one (hot) | 1 | 20% |",
        )
    ]
