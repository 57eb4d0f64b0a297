"""A least-privilege IAM policy for one ledger: only its tables, only the actions it sends."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.exceptions import UnknownRegionError

from dynaledger.errors import ValidationError
from dynaledger.models.layout import TableLayout
from dynaledger.models.transaction import Transaction

#: The IAM actions each DynamoDB operation needs. Transactions are authorized
#: per item: a Put needs PutItem, an Update needs UpdateItem.
OPERATION_ACTIONS: dict[str, tuple[str, ...]] = {
    "GetItem": ("dynamodb:GetItem",),
    "PutItem": ("dynamodb:PutItem",),
    "UpdateItem": ("dynamodb:UpdateItem",),
    "DeleteItem": ("dynamodb:DeleteItem",),
    "Query": ("dynamodb:Query",),
    "Scan": ("dynamodb:Scan",),
    "BatchGetItem": ("dynamodb:BatchGetItem",),
    "BatchWriteItem": ("dynamodb:BatchWriteItem",),
    # A hold's check of its payee is a ConditionCheck inside the transaction.
    "TransactWriteItems": (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
    ),
    "CreateTable": ("dynamodb:CreateTable",),
    "DescribeTable": ("dynamodb:DescribeTable",),
    "UpdateTable": ("dynamodb:UpdateTable",),
    "DescribeContinuousBackups": ("dynamodb:DescribeContinuousBackups",),
    "UpdateContinuousBackups": ("dynamodb:UpdateContinuousBackups",),
}

RUNTIME_ACTIONS = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:BatchGetItem",
)
#: Every ledger that writes reads the deployment's settings first, once (a GetItem of
#: the ``@settings`` record in the migrations table): the runtime role needs this too.
SETTINGS_ACTIONS = ("dynamodb:GetItem",)
MIGRATION_TABLE_ACTIONS = (
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:UpdateTable",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:UpdateContinuousBackups",
)
#: The migration records are claimed, finished and released by conditional writes.
MIGRATION_RECORD_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:Scan",
)


@functools.lru_cache(maxsize=64)
def partition(region: str) -> str:
    """The AWS partition of ``region`` from botocore's data: ``aws``, ``aws-cn``, ``aws-us-gov``...

    Cached: each lookup builds a botocore session (about 0.1 s), and the IAM
    coverage test asks once per operation and table the suite used.

    Raises:
        ValidationError: No partition has such a region.
    """
    try:
        return str(botocore.session.get_session().get_partition_for_region(region))
    except UnknownRegionError:
        raise ValidationError(
            "region", f"{region!r} is not a region of any AWS partition (such as eu-west-1)"
        ) from None


def table_arn(region: str, account: str, table: str) -> str:
    """The ARN of a table in one account and region, in the region's partition."""
    return f"arn:{partition(region)}:dynamodb:{region}:{account}:table/{table}"


def policy(
    *, region: str, account: str, table_prefix: str = "", layout: TableLayout | None = None
) -> dict[str, Any]:
    """The IAM policy document for the ledger whose tables carry ``table_prefix``.

    Three statements: ``DynaledgerRuntime`` (the services: items of Users and
    Transactions, history through the index), ``DynaledgerSettings`` (the deployment
    settings every writing ledger reads once, in the migrations table; a runtime role
    needs both) and ``DynaledgerMigrations``
    (creating, describing and protecting the tables, and the migration records).
    ARNs carry the region's partition (``arn:aws-cn:...`` for ``cn-north-1``);
    tables carry the names of ``layout`` (dynaledger's own by default).

    Raises:
        ValidationError: ``region`` is in no AWS partition, ``account`` is not 12 digits,
            or the prefix and names make no DynamoDB table name (as a ``Ledger`` checks).
    """
    if not (len(account) == 12 and account.isascii() and account.isdigit()):
        raise ValidationError("account", f"must be a 12-digit AWS account id, not {account!r}")
    names = layout or TableLayout()
    names.check_prefix(table_prefix)
    users, transactions, migrations = (
        table_arn(region, account, table_prefix + name)
        for name in (names.users_table, names.transactions_table, names.migrations_table)
    )
    index = f"{transactions}/index/{Transaction.user_index.Meta.index_name}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DynaledgerRuntime",
                "Effect": "Allow",
                "Action": list(RUNTIME_ACTIONS),
                "Resource": [users, transactions, index],
            },
            {
                "Sid": "DynaledgerSettings",
                "Effect": "Allow",
                "Action": list(SETTINGS_ACTIONS),
                "Resource": [migrations],
            },
            {
                "Sid": "DynaledgerMigrations",
                "Effect": "Allow",
                "Action": sorted({*MIGRATION_TABLE_ACTIONS, *MIGRATION_RECORD_ACTIONS}),
                "Resource": [users, transactions, migrations],
            },
        ],
    }


def allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """True when a statement of ``document`` allows ``action`` on exactly ``resource``."""
    return any(
        statement["Effect"] == "Allow"
        and action in statement["Action"]
        and resource in statement["Resource"]
        for statement in document["Statement"]
    )
