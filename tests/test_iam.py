"""The IAM policy: its shape, and that it covers every operation the library sends.

Every test's operations are checked right after it (``tests/conftest.py``), in
whichever process of a parallel run it ran; the scenario here drives every kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dynaledger import Ledger, iam
from dynaledger.cli import main
from dynaledger.errors import ValidationError
from dynaledger.models import TableLayout
from tests.conftest import IAM_ACCOUNT as ACCOUNT
from tests.conftest import IAM_REGION as REGION
from tests.conftest import RECORDER, iam_uncovered


def _resources(document: dict[str, Any]) -> set[str]:
    return {r for s in document["Statement"] for r in s["Resource"]}


def _prod_tables(partition: str, region: str) -> set[str]:
    """The ARNs a policy for the ``prod-`` prefix should name, and only those."""
    base = f"arn:{partition}:dynamodb:{region}:{ACCOUNT}:table/prod-"
    index = "Transactions/index/userId-timestamp-index"
    return {base + "Users", base + "Transactions", base + index, base + "SchemaMigrations"}


class TestPolicy:
    def test_names_only_the_prefixed_tables_and_index(self) -> None:
        """Every resource of the policy is one of the prefix's three tables or its index."""
        document = iam.policy(region=REGION, account=ACCOUNT, table_prefix="prod-")
        assert _prod_tables("aws", REGION) == _resources(document)
        assert ["DynaledgerRuntime", "DynaledgerSettings", "DynaledgerMigrations"] == [
            s["Sid"] for s in document["Statement"]
        ]
        assert not any("*" in a for s in document["Statement"] for a in s["Action"])

    def test_runtime_cannot_create_or_delete_tables(self) -> None:
        """The runtime statement holds item and query actions only."""
        runtime = iam.policy(region=REGION, account=ACCOUNT)["Statement"][0]
        assert not {"dynamodb:CreateTable", "dynamodb:DeleteTable", "dynamodb:DeleteItem"} & set(
            runtime["Action"]
        )

    def test_a_runtime_role_reads_the_deployment_settings_and_nothing_else_there(
        self,
    ) -> None:
        """Runtime and settings statements: every write reads @settings first (a GetItem
        of the migrations table), so they allow that GetItem, and no write there."""
        document = iam.policy(region=REGION, account=ACCOUNT, table_prefix="prod-")
        runtime = {"Version": document["Version"], "Statement": document["Statement"][:2]}
        migrations = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/prod-SchemaMigrations"
        assert [True, False, False] == [
            iam.allows(runtime, action, migrations)
            for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        ]

    def test_cli_prints_the_same_policy(self, capsys: object) -> None:
        """``dynaledger iam-policy`` prints the document as JSON."""
        code = main(["iam-policy", "--region", REGION, "--account", ACCOUNT,
                     "--table-prefix", "prod-"])  # fmt: skip
        out, _ = capsys.readouterr()  # type: ignore[attr-defined]
        expected = iam.policy(region=REGION, account=ACCOUNT, table_prefix="prod-")
        assert (0, expected) == (code, json.loads(out))


class TestPartitions:
    @pytest.mark.parametrize(
        ("region", "partition"),
        [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-gov-east-1", "aws-us-gov"),
        ],
    )
    def test_every_arn_carries_the_regions_partition(self, region: str, partition: str) -> None:
        """China and GovCloud regions get arn:aws-cn: and arn:aws-us-gov:, others arn:aws:."""
        document = iam.policy(region=region, account=ACCOUNT, table_prefix="prod-")
        assert _prod_tables(partition, region) == _resources(document)

    def test_cli_prints_the_china_partition(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``dynaledger iam-policy --region cn-north-1`` names arn:aws-cn: tables."""
        assert 0 == main(["iam-policy", "--region", "cn-north-1", "--account", ACCOUNT])
        users = json.loads(capsys.readouterr().out)["Statement"][0]["Resource"][0]
        assert f"arn:aws-cn:dynamodb:cn-north-1:{ACCOUNT}:table/Users" == users

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--region", "local", "--account", ACCOUNT],
             "error: region: 'local' is not a region of any AWS partition (such as eu-west-1)\n"),
            (["--region", REGION, "--account", "12345"],
             "error: account: must be a 12-digit AWS account id, not '12345'\n"),
            (["--region", REGION, "--account", ACCOUNT, "--table-prefix", "bad prefix"],
             "error: table_prefix: must be letters, digits, '_', '-' or '.', not 'bad prefix'\n"),
            (["--region", REGION, "--account", ACCOUNT, "--users-table", "x"],
             "error: users_table: x (1 character with the prefix) must be 3 to 255 "
             "characters\n"),
        ],
    )  # fmt: skip
    def test_a_region_outside_every_partition_a_bad_account_or_table_name_is_refused(
        self, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No policy with a made-up partition, account or table name (which a Ledger would
        refuse): one error line, exit 1."""
        assert 1 == main(["iam-policy", *args])
        assert ("", message) == capsys.readouterr()
        prefix, layout = "", TableLayout()
        if "--table-prefix" in args:
            prefix = args[5]
        elif "--users-table" in args:
            layout = TableLayout(users_table=args[5])
        with pytest.raises(ValidationError):
            iam.policy(region=args[1], account=args[3], table_prefix=prefix, layout=layout)

    def test_no_region_anywhere_is_a_usage_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without --region, $AWS_REGION or $AWS_DEFAULT_REGION: exit 2, as for a missing
        argument, with one error line naming where a region comes from."""
        monkeypatch.delenv("AWS_REGION", raising=False)
        monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
        assert 2 == main(["iam-policy", "--account", ACCOUNT])
        assert ("", "error: --region (or $AWS_REGION) is required\n") == capsys.readouterr()


class TestLayout:
    def test_a_shared_layout_names_the_services_tables(self) -> None:
        """With another service's table names the policy names those tables, and only those."""
        layout = TableLayout(users_table="UserTable", transactions_table="TransactionTable")
        document = iam.policy(region=REGION, account=ACCOUNT, table_prefix="prod-", layout=layout)
        base = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/prod-"
        assert {
            base + "UserTable",
            base + "TransactionTable",
            base + "TransactionTable/index/userId-timestamp-index",
            base + "SchemaMigrations",
        } == _resources(document)

    def test_cli_takes_the_layout_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``iam-policy --users-table ... --transactions-table ...`` prints that layout's policy."""
        tables = ["--users-table", "UserTable", "--transactions-table", "TransactionTable"]
        code = main(["iam-policy", "--region", REGION, "--account", ACCOUNT, *tables])
        layout = TableLayout(users_table="UserTable", transactions_table="TransactionTable")
        expected = iam.policy(region=REGION, account=ACCOUNT, layout=layout)
        assert (0, expected) == (code, json.loads(capsys.readouterr().out))


class TestCoverage:
    def test_every_operation_sent_is_allowed(self, ledger_factory: Callable[..., Ledger]) -> None:
        """Each (operation, table) the scenario made the library send, every kind among them,
        maps to actions the policy allows there."""
        ledger = ledger_factory()
        ledger.migrate(point_in_time_recovery=True, deletion_protection=True)
        ledger.seed()
        ledger.generate_users(3)
        ledger.get_user_balance("alice")
        ledger.transact(idempotency_key="iam-1", user_id="alice", amount="1", type="credit")
        ledger.transfer(idempotency_key="iam-2", from_user_id="alice", to_user_id="bob",
                        amount="1")  # fmt: skip
        ledger.history("alice")
        ledger.reconcile()
        ledger.migration_status()
        ledger.table_settings()

        prefix = ledger.settings.table_prefix
        seen = {(op, table) for op, table in RECORDER.seen if table.startswith(prefix)}
        assert {"TransactWriteItems", "Query", "Scan", "GetItem",
                "CreateTable", "UpdateContinuousBackups"} <= {op for op, _ in seen}  # fmt: skip
        assert [] == iam_uncovered(seen)

    def test_an_operation_the_policy_does_not_allow_is_reported(self) -> None:
        """The per-test check names what is not allowed: a delete of an account, a table
        of no known layout; an allowed read is not reported."""
        seen = {("DeleteItem", "prod-Users"), ("GetItem", "prod-Users"), ("Scan", "Elsewhere")}
        assert [
            "DeleteItem needs dynamodb:DeleteItem on prod-Users",
            "Scan on unknown table Elsewhere",
        ] == iam_uncovered(seen)
