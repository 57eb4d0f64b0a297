"""The dynaledger command end to end against the test server."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dynaledger import Ledger
from dynaledger.cli import _guarded, _parser, main
from dynaledger.errors import LedgerError
from tests.conftest import unique

Run = Callable[..., tuple[int, str, str]]
README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture
def cli(fresh_ledger: Ledger, dynamodb_endpoint: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the CLI in-process on the fresh ledger's tables; return (code, stdout, stderr)."""
    prefix = fresh_ledger.settings.table_prefix

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["--endpoint", dynamodb_endpoint, "--table-prefix", prefix, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


class TestCommands:
    def test_migrate_then_status(self, cli: Run, fresh_ledger: Ledger) -> None:
        """migrate on migrated tables applies nothing; --status lists revisions and protection."""
        assert (0, "nothing to apply: up to date\n", "") == cli("migrate")
        code, out, _ = cli("migrate", "--status")
        lines = out.splitlines()
        assert (0, ["0001", "0002"]) == (code, [line.split()[0] for line in lines[:2]])
        assert all("applied" in line for line in lines[:2])
        assert [
            *(
                f"table {name}: point-in-time recovery off, deletion protection off"
                for name in fresh_ledger.table_names
            ),
            "settings: opening balance 100.00, default currency USD, assets none",
        ] == lines[2:]

    def test_seed_twice(self, cli: Run) -> None:
        """seed reports created then skipped users."""
        assert (0, "created 5, skipped 0 existing\n", "") == cli("seed")
        assert (0, "created 0, skipped 5 existing\n", "") == cli("seed")

    def test_seed_generate_shows_progress(self, cli: Run) -> None:
        """seed --generate N writes N users and draws a progress bar on stderr."""
        code, out, err = cli("seed", "--generate", "30")
        assert (0, "created 30, skipped 0 existing\n") == (code, out)
        assert err.endswith("] 30/30\n")

    def test_balance_transact_transfer_history_reconcile(self, cli: Run) -> None:
        """The money commands print one readable line each and exit 0."""
        cli("seed")
        assert (0, "carol: 100.00 USD (opening balance)\n", "") == cli("balance", "carol")
        assert (0, "credit 5.00 USD to carol\n", "") == cli(
            "transact", "--key", "c1", "--user", "carol", "--amount", "5", "--type", "credit"
        )
        assert (0, "credit 5.00 USD to carol (replayed: already applied)\n", "") == cli(
            "transact", "--key", "c1", "--user", "carol", "--amount", "5", "--type", "credit"
        )
        assert (0, "transferred 1.50 USD from alice to carol\n", "") == cli(
            "transfer", "--key", "t1", "--from", "alice", "--to", "carol", "--amount", "1.50"
        )
        code, out, _ = cli("history", "carol")
        lines = out.splitlines()
        assert (0, 2) == (code, len(lines))
        assert lines[0].endswith("+          1.50 USD  t1  (from alice)")
        assert lines[1].endswith("+          5.00 USD  c1")
        assert (0, "reconciled 5 accounts: OK\n", "") == cli("reconcile")

    def test_json_output_for_machines(self, cli: Run) -> None:
        """--json prints the result object as JSON with exact decimal strings."""
        cli("seed")
        code, out, _ = cli("balance", "alice", "--json")
        assert (0, {"user_id": "alice", "amount": "250.00", "currency": "USD",
                    "is_opening": False, "held": "0.00", "credit_limit": "0.00"}) == (
            code, json.loads(out))  # fmt: skip
        code, out, _ = cli("transact", "--key", "j1", "--user", "alice", "--amount", "0.10",
                           "--type", "debit", "--json")  # fmt: skip
        data = json.loads(out)
        assert ("j1", "0.10", "debit", False) == (
            data["idempotency_key"], data["amount"], data["type"], data["replayed"],
        )  # fmt: skip

    def test_credit_limits_from_the_command_line(self, cli: Run) -> None:
        """create-user --credit-limit and set-credit-limit, in text and --json; a debit into
        the limit passes, past it exits 1 naming the limit; history shows the change."""
        assert (0, "created cl (USD) with 0.00 USD, credit limit 20.00 USD\n", "") == cli(
            "create-user", "cl", "--balance", "0", "--credit-limit", "20"
        )
        assert 0 == cli("transact", "--key", "d1", "--user", "cl", "--amount", "15",
                        "--type", "debit")[0]  # fmt: skip
        assert (0, "cl: -15.00 USD (credit limit 20.00 USD)\n", "") == cli("balance", "cl")
        code, _, err = cli("transact", "--key", "d2", "--user", "cl", "--amount", "5.01",
                           "--type", "debit")  # fmt: skip
        assert 1 == code
        assert "has -15.00 USD and a credit limit of 20.00 USD, 5.01 USD requested" in err
        assert (0, "credit limit of cl set to 30.00 USD\n", "") == cli(
            "set-credit-limit", "--key", "l1", "--user", "cl", "--limit", "30"
        )
        code, out, _ = cli("set-credit-limit", "--key", "l1", "--user", "cl", "--limit", "30",
                           "--json")  # fmt: skip
        data = json.loads(out)
        assert (0, "l1", "cl", "30.00", "USD", True) == (
            code, data["idempotency_key"], data["user_id"], data["credit_limit"],
            data["currency"], data["replayed"],
        )  # fmt: skip
        code, out, _ = cli("create-user", "cj", "--credit-limit", "5", "--json")
        assert (0, {"user_id": "cj", "currency": "USD", "balance": None,
                    "credit_limit": "5.00"}) == (code, json.loads(out))  # fmt: skip
        _, out, _ = cli("history", "cl")
        assert out.splitlines()[0].endswith("=         30.00 USD  l1  (credit limit set)")

    def test_history_pages_with_a_cursor(self, cli: Run) -> None:
        """--limit shows a cursor line; --cursor continues from it."""
        cli("seed")
        for n in range(3):
            cli("transact", "--key", f"h{n}", "--user", "bob", "--amount", "1", "--type", "credit")
        _, out, _ = cli("history", "bob", "--limit", "2")
        cursor = out.splitlines()[-1].split("--cursor ")[1]
        _, rest, _ = cli("history", "bob", "--limit", "2", "--cursor", cursor)
        assert rest.splitlines()[0].endswith("h0")

    def test_text_shows_another_clients_ids_and_keys_one_entry_per_line(
        self, cli: Run, fresh_ledger: Ledger
    ) -> None:
        """A key, a hold id and a user id holding a newline (written by another client) are
        escaped in history, holds and reconcile text: no stored value forges a line."""
        forged = "evil\n2099-01-01 00:00:00  +    1000000.00 USD  fake"
        users, records = fresh_ledger.table_names[:2]
        client = fresh_ledger.botocore_client
        client.put_item(TableName=users, Item={"userId": {"S": "x\ny"}, "balance": {"N": "1"}})
        client.put_item(TableName=users, Item={"userId": {"S": "plain"}, "balance": {"N": "105"}})
        client.put_item(TableName=records, Item={
            "idempotencyKey": {"S": forged}, "userId": {"S": "plain"}, "amount": {"N": "5"},
            "type": {"S": "credit"}, "timestamp": {"S": "2026-01-02T03:04:05Z"},
        })  # fmt: skip
        hold = "h\n2099-01-01  +1000000.00 USD  forged"
        client.put_item(TableName=users, Item={
            "userId": {"S": "holder"}, "balance": {"N": "95"}, "held": {"N": "5"},
            "holdCount": {"N": "1"}, f"hold:{hold}": {"M": {"remaining": {"N": "5"}}},
        })  # fmt: skip
        client.put_item(TableName=records, Item={
            "idempotencyKey": {"S": hold}, "userId": {"S": "holder"}, "amount": {"N": "5"},
            "type": {"S": "debit"}, "timestamp": {"S": "2026-01-02T03:04:06Z"},
            "kind": {"S": "hold"}, "status": {"S": "applied"}, "holdId": {"S": hold},
            "holdStatus": {"S": "active"}, "remaining": {"N": "5"}, "currency": {"S": "USD"},
            "counterpartyId": {"S": "x\ny"},
        })  # fmt: skip
        _, holds, _ = cli("holds", "holder")
        assert [
            "h\\u000a2099-01-01  +1000000.00 USD  forged  5.00 of 5.00 USD for x\\u000ay  "
            "(no expiry)"
        ] == holds.splitlines()
        _, history, _ = cli("history", "plain")
        _, reconciled, _ = cli("reconcile")
        assert [
            "2026-01-02 03:04:05  +          5.00 USD  "
            "evil\\u000a2099-01-01 00:00:00  +    1000000.00 USD  fake",
        ] == history.splitlines()
        assert [
            "MISMATCH x\\u000ay: history says 100.00, balance is 1.00",
            "reconciled 3 accounts: 1 mismatch, 0 unreadable items",
        ] == reconciled.splitlines()

    def test_reconcile_exits_non_zero_on_a_mismatch(self, cli: Run, fresh_ledger: Ledger) -> None:
        """A tampered balance makes reconcile print the mismatch and exit 1."""
        cli("seed")
        fresh_ledger.botocore_client.update_item(
            TableName=fresh_ledger.table_names[0], Key={"userId": {"S": "bob"}},
            UpdateExpression="SET balance = :b", ExpressionAttributeValues={":b": {"N": "1"}},
        )  # fmt: skip
        expected = (
            "MISMATCH bob: history says 40.00, balance is 1.00\n"
            "reconciled 5 accounts: 1 mismatch, 0 unreadable items\n"
        )
        assert (1, expected, "") == cli("reconcile")


class TestErrors:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["balance", "ghost"], "error: user 'ghost' does not exist\n"),
            (["transact", "--key", "e1",
              "--user", "alice", "--amount", "1,000", "--type", "debit"],
             "error: amount: '1,000' is not a decimal number such as '12.34'\n"),
            (["transact", "--key", "e2", "--user", "bob", "--amount", "100", "--type", "debit"],
             "error: insufficient funds: user 'bob' has 40.00 USD, 100.00 USD requested\n"),
            (["transact", "--key", "e3", "--user", "bob", "--amount", "1", "--type", "refund"],
             "error: type: must be 'credit' or 'debit', not 'refund'\n"),
            (["transfer", "--key", "e4", "--from", "bob", "--to", "bob", "--amount", "1"],
             "error: to_user_id: must differ from from_user_id\n"),
            (["history", "bob", "--limit", "0"],
             "error: limit: must be an int from 1 to 1000, not 0\n"),
            (["transact", "--key", "e5", "--user", "bob", "--amount", "1e" + "9" * 19,
              "--type", "credit"],
             f"error: amount: '1e{'9' * 19}' has an exponent out of range\n"),
            (["hold", "--key", "e6", "--user", "bob", "--amount", "1", "--timeout", "\u0665"],
             "error: timeout: must be a number of seconds, not '\u0665'\n"),
            (["hold", "--key", "e7", "--user", "bob", "--amount", "1", "--timeout", " 5"],
             "error: timeout: must be a number of seconds, not ' 5'\n"),
        ],
    )  # fmt: skip
    def test_domain_errors_print_one_line_and_exit_1(
        self, cli: Run, args: list[str], message: str
    ) -> None:
        """Expected failures print a single error line on stderr, no traceback."""
        cli("seed")
        assert (1, "", message) == cli(*args)

    @pytest.mark.parametrize("limit", ["\u0665", " 5", "5.0"])
    def test_a_whole_number_option_takes_ascii_digits_only(
        self, cli: Run, capsys: pytest.CaptureFixture[str], limit: str
    ) -> None:
        """--limit in Arabic-Indic digits, with a space or as 5.0: a usage error (exit 2)."""
        with pytest.raises(SystemExit) as exited:
            cli("history", "bob", "--limit", limit)
        last = capsys.readouterr().err.splitlines()[-1]
        assert (2, f"dynaledger history: error: argument --limit: must be a whole number in "
                   f"ASCII digits, not {limit!r}") == (exited.value.code, last)  # fmt: skip

    def test_expire_holds_lists_an_unreadable_account_and_exits_1(
        self, cli: Run, fresh_ledger: Ledger
    ) -> None:
        """An account whose hold entry is not a map is listed, skipped, and the exit is 1."""
        fresh_ledger.botocore_client.put_item(
            TableName=fresh_ledger.table_names[0],
            Item={"userId": {"S": "odd"}, "held": {"N": "5"}, "hold:x": {"S": "garbage"}},
        )
        code, out, _ = cli("expire-holds", "odd")
        assert (1, [
            f"UNREADABLE odd: item 'odd' of {fresh_ledger.table_names[0]}: hold:x is not a hold "
            "entry ('M')",
            "released 0 expired holds of 0 accounts (1 checked, 1 unreadable account)",
        ]) == (code, out.splitlines())  # fmt: skip

    def test_an_error_quoting_a_page_prints_as_one_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An error quoting a server's HTML page (not DynamoDB) is folded into one line."""
        page = "<!DOCTYPE HTML>\n<html>\n  <p>Error code: 501</p>\n</html>\n"

        def failing() -> int:
            raise LedgerError(f"DynamoDB did not answer ({page})")

        assert 1 == _guarded(failing)
        assert ("error: DynamoDB did not answer (<!DOCTYPE HTML> <html> <p>Error code: 501</p> "
                "</html> )\n") == capsys.readouterr().err  # fmt: skip

    def test_missing_tables_say_to_migrate(
        self, dynamodb_endpoint: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """On an unmigrated prefix the error names the table and the fix."""
        prefix = f"{unique('none')}_"
        code = main(["--endpoint", dynamodb_endpoint, "--table-prefix", prefix, "balance", "x"])
        _, err = capsys.readouterr()
        assert (1, f"error: table '{prefix}Users' does not exist; run `dynaledger migrate`\n") == (
            code, err,
        )  # fmt: skip


class TestConsoleScript:
    def test_the_installed_command_runs_end_to_end(
        self, dynamodb_endpoint: str, fresh_ledger: Ledger
    ) -> None:
        """``python -m dynaledger`` reads the endpoint and prefix from the environment."""
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
            "DYNALEDGER_TABLE_PREFIX": fresh_ledger.settings.table_prefix,
        }
        user_id = unique("sub")
        fresh_ledger.create_user(user_id, balance="3")
        done = subprocess.run(
            [sys.executable, "-m", "dynaledger", "balance", user_id],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert (0, f"{user_id}: 3.00 USD\n", "") == (done.returncode, done.stdout, done.stderr)

    def test_a_reader_that_leaves_early_ends_the_command_quietly(self) -> None:
        """Output closed before the command writes (``| head`` gone): exit 141, no traceback."""
        command = [sys.executable, "-m", "dynaledger", "iam-policy", "--region", "eu-west-1",
                   "--account", "123456789012"]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env) as done:  # fmt: skip
            assert done.stdout is not None
            assert done.stderr is not None
            done.stdout.close()  # before the interpreter has even imported dynaledger
            assert (141, b"") == (done.wait(), done.stderr.read())

    def test_demo_walks_through_every_guarantee(self) -> None:
        """``dynaledger demo`` starts its own endpoint, plays the bet, ends with reconcile OK."""
        done = subprocess.run(
            [sys.executable, "-m", "dynaledger", "demo"],
            capture_output=True, text=True, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")},
        )  # fmt: skip
        assert 0 == done.returncode, done.stderr
        assert "applied 8, refused 12; balance now 0.00" in done.stdout
        # The bet: the late capture of the abandoned round is refused, its stake came back.
        assert "a late capture: HoldExpired" in done.stdout
        assert "expire-holds wrote 1 release into history" in done.stdout
        # Credit: a BTC wallet to 8 decimals, an account that goes to -110 on a limit of 150.
        assert "0.37654322 BTC" in done.stdout
        assert "and a credit limit of 100.00 USD, 50.00 USD requested" in done.stdout
        assert "-110.00 USD  (credit limit 150.00)" in done.stdout
        # Round 4 settled across three accounts in one posting; a bet refunded in part.
        assert "posted 20.00 USD across 3 accounts" in done.stdout
        assert "RefundExceeded: movement" in done.stdout
        assert done.stdout.rstrip().endswith("checked 11 accounts: OK")

    def test_demo_takes_the_commands_settings(
        self, dynamodb_endpoint: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:  # fmt: skip
        """The layout, opening balance and prefix from the environment apply to the demo's
        ledgers (they were ignored); a bad setting is an error line naming its variable."""
        prefix = f"{unique('demo')}-"
        monkeypatch.setenv("DYNALEDGER_TABLE_PREFIX", prefix)
        # The TypeScript service's names, which the IAM coverage check knows.
        monkeypatch.setenv("DYNALEDGER_USERS_TABLE", "UserTable")
        monkeypatch.setenv("DYNALEDGER_TRANSACTIONS_TABLE", "TransactionTable")
        monkeypatch.setenv("DYNALEDGER_OPENING_BALANCE", "50")
        code = main(["--endpoint", dynamodb_endpoint, "demo"])
        out = capsys.readouterr().out
        probe = Ledger(dynamodb_endpoint, region="us-east-1").botocore_client
        users = probe.describe_table(TableName=f"{prefix}UserTable")["Table"]["ItemCount"]
        assert (0, True, True) == (
            code, "carol         50.00 USD  (opening balance)" in out, users > 0,
        )  # fmt: skip
        monkeypatch.setenv("DYNALEDGER_DEADLINE", "soon")
        assert 1 == main(["--endpoint", dynamodb_endpoint, "demo"])
        assert "error: DYNALEDGER_DEADLINE: must be a number of seconds, not 'soon'\n" == (
            capsys.readouterr().err
        )


class TestHoldCommands:
    def test_hold_capture_void_holds_and_expire_holds(self, cli: Run) -> None:
        """The holds commands print one line each, replays say so, balance shows what is held."""
        cli("create-user", "pl", "--balance", "100")
        cli("create-user", "house", "--balance", "0")
        bet = ("hold", "--key", "bet1", "--user", "pl", "--amount", "30", "--to", "house")
        assert (0, "held 30.00 USD of pl for house\n", "") == cli(*bet)
        assert (0, "held 30.00 USD of pl for house (replayed: already applied)\n", "") == cli(*bet)
        assert (0, "pl: 70.00 USD (30.00 USD held)\n", "") == cli("balance", "pl")
        code, out, _ = cli("holds", "pl")
        assert (0, "bet1  30.00 of 30.00 USD for house  (no expiry)\n") == (code, out)
        partial = ("capture", "--key", "c1", "--hold", "bet1", "--amount", "10", "--not-final")
        line = "captured 10.00 USD of hold bet1, released 0.00, 20.00 remaining\n"
        assert (0, line, "") == cli(*partial)
        assert (0, "voided hold bet1: released 20.00 USD to pl\n", "") == cli(
            "void", "--key", "v1", "--hold", "bet1"
        )
        assert (0, "no active holds\n", "") == cli("holds", "pl")
        assert (0, "released 0 expired holds of 0 accounts (1 checked)\n", "") == cli(
            "expire-holds", "pl"
        )
        cli("hold", "--key", "bet2", "--user", "pl", "--amount", "1", "--timeout", "0.000001")
        assert (0, "released 1 expired hold of 1 account (1 checked)\n", "") == cli(
            "expire-holds", "pl"
        )
        code, _, err = cli("capture", "--key", "c2", "--hold", "bet1")
        assert (1, "error: hold 'bet1' is closed: already voided\n") == (code, err)

    def test_the_holds_commands_speak_json(self, cli: Run) -> None:
        """--json prints the result objects with decimals as strings."""
        cli("create-user", "pj", "--balance", "10")
        code, out, _ = cli("hold", "--key", "hj", "--user", "pj", "--amount", "4",
                           "--timeout", "3600", "--json")  # fmt: skip
        held = json.loads(out)
        assert (0, "hj", "4.00", False) == (code, held["hold_id"], held["amount"], held["replayed"])
        code, out, _ = cli("holds", "pj", "--json")
        listed = json.loads(out)
        assert (0, [("hj", "4.00")]) == (code, [(h["hold_id"], h["remaining"]) for h in listed])
        code, out, _ = cli("capture", "--key", "cj", "--hold", "hj", "--amount", "1", "--json")
        captured = json.loads(out)
        assert ("1.00", "3.00", "0.00") == (
            captured["amount"], captured["released"], captured["remaining"],
        )  # fmt: skip
        code, out, _ = cli("expire-holds", "--json")
        assert {"checked": 0, "accounts": 0, "released": 0, "problems": []} == json.loads(out)
        code, out, _ = cli("hold", "--key", "hv", "--user", "pj", "--amount", "1", "--json")
        code, out, _ = cli("void", "--key", "vj", "--hold", "hv", "--json")
        assert ("1.00", "pj") == (json.loads(out)["released"], json.loads(out)["user_id"])


class TestRefundAndPostCommands:
    def test_post_and_refund_print_one_line_each_and_replays_say_so(self, cli: Run) -> None:
        """A round across three accounts, a partial refund of a bet, the posting refunded whole."""
        for user, balance in (("ho", "100"), ("pl", "50"), ("rk", "0")):
            cli("create-user", user, "--balance", balance)
        round_ = ("post", "--key", "r1", "--leg", "ho:20:debit", "--leg", "pl:19:credit",
                  "--leg", "rk:1:credit")  # fmt: skip
        line = "posted 20.00 USD: -20.00 ho, +19.00 pl, +1.00 rk\n"
        assert (0, line, "") == cli(*round_)
        assert (0, line.replace("\n", " (replayed: already applied)\n"), "") == cli(*round_)
        cli("transact", "--key", "bet", "--user", "pl", "--amount", "10", "--type", "debit")
        assert (0, "refunded 4.00 USD of transact bet\n", "") == cli(
            "refund", "--key", "rf1", "--of", "bet", "--amount", "4"
        )
        assert (0, "refunded 20.00 USD of posting r1\n", "") == cli("refund", "--key", "rf2",
                                                                    "--of", "r1")  # fmt: skip
        assert (0, "pl: 44.00 USD\n", "") == cli("balance", "pl")
        code, _, err = cli("refund", "--key", "rf3", "--of", "bet", "--amount", "7")
        line = "error: movement 'bet' has 6.00 USD left to refund, 7.00 USD requested\n"
        assert (1, line) == (code, err)
        code, _, err = cli("refund", "--key", "rf4", "--of", "r1")
        assert (1, "error: movement 'r1' has nothing left to refund\n") == (code, err)
        code, _, err = cli("refund", "--key", "rf5", "--of", "bet", "--meta", "a=1", "--meta",
                           "a=2")  # fmt: skip
        assert (1, "error: --meta: 'a' is given twice\n") == (code, err)
        code, _, err = cli("post", "--key", "r2", "--leg", "ho-20-debit", "--leg", "pl:20:credit")
        assert (1, "error: --leg 1: must be USER:AMOUNT:TYPE, not 'ho-20-debit'\n") == (code, err)
        code, _, err = cli("post", "--key", "r2", "--leg", "ho:20:debit", "--leg", "pl:20:crdit")
        line = "error: --leg 2 type: must be 'credit' or 'debit', not 'crdit'\n"
        assert (1, line) == (code, err)

    def test_post_and_refund_speak_json(self, cli: Run) -> None:
        """--json prints the posting's net legs and the refund, decimals as strings."""
        cli("create-user", "hj", "--balance", "50")
        cli("create-user", "pj", "--balance", "0")
        code, out, _ = cli("post", "--key", "pk", "--leg", "hj:5:debit", "--leg", "pj:5:credit",
                           "--json")  # fmt: skip
        posted = json.loads(out)
        assert (0, "5.00", [["hj", "5.00", "debit"], ["pj", "5.00", "credit"]]) == (
            code, posted["amount"],
            [[leg["user_id"], leg["amount"], leg["type"]] for leg in posted["legs"]],
        )  # fmt: skip
        code, out, _ = cli("refund", "--key", "rk", "--of", "pk", "--json")
        refunded = json.loads(out)
        assert (0, "pk", "posting", "5.00", False) == (
            code,
            refunded["of"],
            refunded["kind"],
            refunded["amount"],
            refunded["replayed"],
        )


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    """The ``dynaledger`` commands by name, as its parser defines them."""
    parser = _parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("dynaledger has no subcommands")


def _named_before(text: str, marker: str) -> list[str]:
    """The backquoted names in the README sentence that ends with ``marker``."""
    prose = " ".join(text.split())  # however its lines are wrapped
    sentence = prose[: prose.index(marker)].rsplit(".", 1)[-1]
    return re.findall(r"`([a-z-]+)`", sentence)


def _command_line_section() -> str:
    """The README's section "The command line"."""
    text = README.read_text(encoding="utf-8")
    return text.split("## The command line\n", 1)[1].split("\n## ", 1)[0]


class TestTheReadmeCommandLine:
    def test_it_shows_every_command(self) -> None:
        """The README's command block has a line for each command, in the parser's order."""
        block = _command_line_section().split("```sh", 1)[1].split("```", 1)[0]
        shown = re.findall(r"^dynaledger (?:--endpoint \S+ )?([a-z-]+)", block, re.M)
        assert list(_subcommands()) == sorted(set(shown), key=shown.index)

    def test_it_names_the_commands_that_take_json_and_meta(self) -> None:
        """The sentences on ``--json`` and ``--meta`` name exactly the commands taking them."""
        commands = _subcommands()
        takes = {
            option: [name for name, sub in commands.items() if option in sub._option_string_actions]
            for option in ("--json", "--meta")
        }
        section = _command_line_section()
        documented = {
            "--json": _named_before(section, "take `--json`"),
            "--meta": _named_before(section, "take `--meta"),
        }
        assert takes == documented


class TestLayoutFromTheEnvironment:
    def test_commands_read_the_layout_variables(
        self, cli: Run, fresh_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """DYNALEDGER_USERS_TABLE names the accounts table for the CLI as for from_env: one no
        table has is TableNotFound; a bad one an error naming the variable; --users-table wins."""
        prefix = fresh_ledger.settings.table_prefix
        fresh_ledger.create_user("alice", balance="3")
        monkeypatch.setenv("DYNALEDGER_USERS_TABLE", "OtherUsers")
        missing = f"error: table '{prefix}OtherUsers' does not exist; run `dynaledger migrate`\n"
        assert (1, missing) == cli("balance", "alice")[::2]
        assert (0, "alice: 3.00 USD\n") == cli("balance", "alice", "--users-table", "Users")[:2]
        monkeypatch.setenv("DYNALEDGER_USERS_TABLE", "a b")
        code, _, err = cli("balance", "alice")
        rule = "must be 1 to 255 letters, digits, '_', '-' or '.', not 'a b'"
        assert (1, f"error: DYNALEDGER_USERS_TABLE: {rule}\n") == (code, err)

    def test_migrate_keys_the_records_by_the_variables_attribute(
        self, make_ledger: Callable[..., Ledger], dynamodb_endpoint: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    ) -> None:  # fmt: skip
        """DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE=idempotentKey: migrate keys Transactions by it."""
        ledger = make_ledger()
        monkeypatch.setenv("DYNALEDGER_IDEMPOTENCY_KEY_ATTRIBUTE", "idempotentKey")
        prefix = ledger.settings.table_prefix
        assert 0 == main(["--endpoint", dynamodb_endpoint, "--table-prefix", prefix, "migrate"])
        described = ledger.botocore_client.describe_table(TableName=ledger.table_names[1])
        assert [{"AttributeName": "idempotentKey", "KeyType": "HASH"}] == (
            described["Table"]["KeySchema"]
        )
