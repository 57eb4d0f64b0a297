"""The embedded endpoint answers as stock moto does, at a cost that does not grow with the tables.

``dynaledger._moto_flat`` changes how moto rolls back a failed transaction and
which items a query looks at. These tests hold it to stock moto:

* a differential run sends the same random requests to moto's own server and
  to the embedded endpoint and requires the same answers, the same tables and
  the same stream records after every step;
* explicit rollback cases check, item by item, what a failed transaction leaves;
* a guard counts the items moto makes per credit: if a moto upgrade brings
  back table copies, it fails.

When the guard or the differential test fails after a moto upgrade: read the
new ``DynamoDBBackend.transact_write_items`` and ``Table.query`` in
``moto/dynamodb/models/``, adapt ``dynaledger/_moto_flat.py`` to them (or drop
what upstream now does itself), run this file until it passes, then widen the
moto pin in ``pyproject.toml`` to the version it passed on. Until then keep the
pin where it is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import Item

from benchmarks.embedded import stock_moto_server
from dynaledger import Ledger
from dynaledger.local import embedded_dynamodb
from tests.conftest import operator_client

ACCOUNT = "123456789012"
STOCK_REGION, FLAT_REGION = "eu-west-1", "eu-west-2"
KEYS, SORTS, GROUPS = ["a", "b", "c", "d"], [1, 2, 3], ["x", "y"]


def client(url: str, region: str) -> Any:
    return botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=url, region_name=region, aws_access_key_id="fidelity",
        aws_secret_access_key="fidelity",  # noqa: S106 - moto accepts any credentials
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def create_tables(dynamodb: Any, prefix: str) -> dict[str, str]:
    """A hash-key table with a GSI and a stream, and a hash-and-range table."""
    hashed, ranged = f"{prefix}hashed", f"{prefix}ranged"
    dynamodb.create_table(
        TableName=hashed,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "gk", "AttributeType": "S"},
                              {"AttributeName": "gs", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "by-group",
            "KeySchema": [{"AttributeName": "gk", "KeyType": "HASH"},
                          {"AttributeName": "gs", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    dynamodb.create_table(
        TableName=ranged,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )  # fmt: skip
    return {"hashed": hashed, "ranged": ranged}


def call(dynamodb: Any, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """The answer to one request: its body, or its error code, message and reasons."""
    try:
        answer = getattr(dynamodb, operation)(**request)
    except ClientError as error:
        answer = error.response
        answer["status"] = answer["ResponseMetadata"]["HTTPStatusCode"]
    answer.pop("ResponseMetadata", None)
    return answer  # type: ignore[no-any-return]


# Random requests ----------------------------------------------------------------------


class Requests:
    """Random requests on the two tables; table names are filled in per server."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def key(self, table: str) -> dict[str, Any]:
        key: dict[str, Any] = {"pk": {"S": self.rng.choice(KEYS)}}
        if table == "ranged":
            key["sk"] = {"N": str(self.rng.choice(SORTS))}
        return key

    def attributes(self) -> dict[str, Any]:
        rng, attrs = self.rng, {}
        attrs["n"] = {"N": str(rng.randint(-5, 20))}
        if rng.random() < 0.7:
            attrs["gk"] = {"S": rng.choice(GROUPS)}
            attrs["gs"] = {"N": str(rng.randint(0, 9))}
        if rng.random() < 0.5:
            attrs["s"] = {"S": rng.choice(["one", "two", "three"])}
        if rng.random() < 0.3:
            attrs["tags"] = {"SS": rng.sample(["p", "q", "r"], rng.randint(1, 3))}
        return attrs

    def condition(self, op: dict[str, Any]) -> None:
        """Maybe add a condition, maybe one that cannot be evaluated, maybe ALL_OLD."""
        roll = self.rng.random()
        if roll < 0.2:
            op["ConditionExpression"] = "attribute_not_exists(pk)"
        elif roll < 0.4:
            op["ConditionExpression"] = "attribute_exists(pk)"
        elif roll < 0.55:
            op["ConditionExpression"] = "n > :floor"
            op.setdefault("ExpressionAttributeValues", {})[":floor"] = {
                "N": str(self.rng.randint(-2, 12))
            }
        elif roll < 0.58:
            op["ConditionExpression"] = "n > :missing"  # no such value: a validation error
        if "ConditionExpression" in op and self.rng.random() < 0.5:
            op["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"

    def operation(self, table: str) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choice(["Put", "Put", "Update", "Update", "Delete", "ConditionCheck"])
        op: dict[str, Any] = {"TableName": table}
        if kind == "Put":
            op["Item"] = {**self.key(table), **self.attributes()}
        else:
            op["Key"] = self.key(table)
        if kind == "Update":
            op["UpdateExpression"], values = rng.choice([
                ("SET n = n + :d", {":d": {"N": str(rng.randint(-3, 3))}}),
                ("SET gk = :g, gs = :s", {":g": {"S": rng.choice(GROUPS)},
                                          ":s": {"N": str(rng.randint(0, 9))}}),
                ("REMOVE s, gk", {}),
                ("ADD n :d", {":d": {"N": "1"}}),
                ("SET s = s + :d", {":d": {"N": "1"}}),  # a string plus a number: fails
                ("SET n = :v", {":v": {"N": str(rng.randint(0, 9))}}),
            ])  # fmt: skip
            if values:
                op["ExpressionAttributeValues"] = values
        self.condition(op)
        if kind == "ConditionCheck" and "ConditionExpression" not in op:
            op["ConditionExpression"] = "attribute_exists(pk)"
        return {kind: op}

    def transaction(self) -> dict[str, Any]:
        items = []
        for _ in range(self.rng.randint(1, 4)):
            items.append(self.operation(self.rng.choice(["hashed", "ranged"])))
        if self.rng.random() < 0.08:  # the same key twice: refused as a whole
            items.append(self.rng.choice(items))
        return {"TransactItems": items}

    def single(self) -> tuple[str, dict[str, Any]]:
        """A non-transactional write: the query index must see these too."""
        table = self.rng.choice(["hashed", "ranged"])
        kind, op = next(iter(self.operation(table).items()))
        op.pop("ReturnValuesOnConditionCheckFailure", None)
        if kind == "Put":
            return "put_item", op
        if kind == "Delete":
            return "delete_item", op
        if kind == "Update":
            return "update_item", op
        return "batch_write_item", {"RequestItems": {table: [
            {"PutRequest": {"Item": {**self.key(table), **self.attributes()}}},
        ]}}  # fmt: skip


def named(request: Any, tables: dict[str, str]) -> Any:
    """The request with the generic table names replaced by one server's."""
    if isinstance(request, dict):
        renamed = {}
        for key, value in request.items():
            if key == "TableName":
                renamed[key] = tables[value]
            elif key == "RequestItems":
                renamed[key] = {tables[t]: named(w, tables) for t, w in value.items()}
            else:
                renamed[key] = named(value, tables)
        return renamed
    if isinstance(request, list):
        return [named(v, tables) for v in request]
    return request


def queries(rng: random.Random) -> Iterator[tuple[str, dict[str, Any]]]:
    """Queries on a table partition and on the GSI, in both directions, with small pages."""
    forward, limit = rng.random() < 0.5, rng.randint(1, 4)
    yield "hashed", {"KeyConditionExpression": "pk = :p",
                     "ExpressionAttributeValues": {":p": {"S": rng.choice(KEYS)}}}  # fmt: skip
    values = {":p": {"S": rng.choice(KEYS)}, ":s": {"N": str(rng.choice(SORTS))}}
    yield "ranged", {"KeyConditionExpression": "pk = :p AND sk >= :s", "Limit": limit,
                     "ScanIndexForward": forward, "ExpressionAttributeValues": values}  # fmt: skip
    yield "hashed", {"IndexName": "by-group", "KeyConditionExpression": "gk = :g",
                     "Limit": limit, "ScanIndexForward": forward,
                     "ExpressionAttributeValues": {":g": {"S": rng.choice(GROUPS)}}}  # fmt: skip
    yield "hashed", {"IndexName": "by-group", "KeyConditionExpression": "gk = :g AND gs < :s",
                     "FilterExpression": "n >= :n",
                     "ExpressionAttributeValues": {":g": {"S": rng.choice(GROUPS)},
                                                   ":s": {"N": "6"}, ":n": {"N": "0"}}}  # fmt: skip


def all_pages(dynamodb: Any, operation: str, request: dict[str, Any]) -> list[dict[str, Any]]:
    pages = []
    while True:
        page = call(dynamodb, operation, request)
        pages.append(page)
        if "LastEvaluatedKey" not in page:
            return pages
        request = {**request, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def stream(region: str, table: str) -> list[dict[str, Any]]:
    """A table's stream records, without the fields that differ on every run.

    ``SizeBytes`` goes too: moto counts the wall-clock timestamp in it.
    """
    shard = dynamodb_backends[ACCOUNT][region].tables[table].stream_shard
    records = []
    for record in shard.items:
        body = {k: v for k, v in record.to_json().items() if k not in {"eventID", "awsRegion"}}
        body["dynamodb"] = {k: v for k, v in body["dynamodb"].items()
                            if k not in {"ApproximateCreationDateTime", "SizeBytes"}}  # fmt: skip
        records.append(body)
    return records


class Pair:
    """The same requests to stock moto and to the embedded endpoint, answers compared."""

    def __init__(self, stock_url: str, flat_url: str, prefix: str) -> None:
        self.stock, self.flat = client(stock_url, STOCK_REGION), client(flat_url, FLAT_REGION)
        self.stock_tables = create_tables(self.stock, prefix)
        self.flat_tables = create_tables(self.flat, prefix)

    def both(self, operation: str, request: dict[str, Any]) -> tuple[Any, Any]:
        return (
            call(self.stock, operation, named(request, self.stock_tables)),
            call(self.flat, operation, named(request, self.flat_tables)),
        )

    def state(self, dynamodb: Any, tables: dict[str, str], region: str) -> dict[str, Any]:
        return {
            name: (all_pages(dynamodb, "scan", {"TableName": real}),
                   stream(region, real) if name == "hashed" else [])
            for name, real in tables.items()
        }  # fmt: skip

    def states(self) -> tuple[Any, Any]:
        return (
            self.state(self.stock, self.stock_tables, STOCK_REGION),
            self.state(self.flat, self.flat_tables, FLAT_REGION),
        )


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    with stock_moto_server() as stock_url, embedded_dynamodb() as flat_url:
        yield stock_url, flat_url


class TestSameAnswersAsStockMoto:
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_random_transactions_writes_and_queries(
        self, servers: tuple[str, str], seed: int
    ) -> None:
        """Random transactions (puts, updates, deletes, condition checks, ALL_OLD, failing
        expressions, duplicate keys) and single writes on a hash table with a GSI and a
        stream and on a hash-and-range table: stock moto and the embedded endpoint give
        the same answers, hold the same items and stream records, and page every query
        (table and GSI, both directions) the same way, after every step."""
        rng = random.Random(seed)
        pair = Pair(*servers, prefix=f"fid{seed}-{rng.getrandbits(32):08x}-")
        requests, outcomes = Requests(rng), set()
        for step in range(80):
            if rng.random() < 0.75:
                operation, request = "transact_write_items", requests.transaction()
            else:
                operation, request = requests.single()
            stock, flat = pair.both(operation, request)
            assert stock == flat, f"step {step}: {operation} {request}"
            outcomes.add(stock.get("Error", {}).get("Code", "ok"))
            for table, conditions in queries(rng):
                query = {"TableName": table, **conditions}
                stock_pages = all_pages(pair.stock, "query", named(query, pair.stock_tables))
                flat_pages = all_pages(pair.flat, "query", named(query, pair.flat_tables))
                assert stock_pages == flat_pages, f"step {step}: {query}"
            if step % 10 == 9:
                stock_state, flat_state = pair.states()
                assert stock_state == flat_state, f"after step {step}"
        stock_state, flat_state = pair.states()
        assert stock_state == flat_state
        # The run went through successes, cancellations and validation errors alike.
        assert {"ok", "TransactionCanceledException", "ValidationException"} <= outcomes

    def test_index_queries_follow_partiql_writes_and_a_table_made_again(
        self, servers: tuple[str, str]
    ) -> None:
        """Writes the endpoint cannot trace to a key (PartiQL) and a table deleted and
        created again under its name: the next GSI query answers as stock moto's does."""
        pair = Pair(*servers, prefix=f"fidx-{random.getrandbits(32):08x}-")
        group_x = {"TableName": "hashed", "IndexName": "by-group",
                   "KeyConditionExpression": "gk = :g",
                   "ExpressionAttributeValues": {":g": {"S": "x"}}}  # fmt: skip
        pair.both("put_item", {"TableName": "hashed", "Item": {**KEEP, "pk": {"S": "one"}}})
        stock, flat = pair.both("query", group_x)
        assert (1, stock) == (flat["Count"], flat)
        for dynamodb, tables in ((pair.stock, pair.stock_tables), (pair.flat, pair.flat_tables)):
            dynamodb.execute_statement(Statement=f"INSERT INTO \"{tables['hashed']}\" "
                                       "VALUE {'pk': 'two', 'gk': 'x', 'gs': 2}")  # fmt: skip
        stock, flat = pair.both("query", group_x)
        assert (2, stock) == (flat["Count"], flat)
        for dynamodb, tables in ((pair.stock, pair.stock_tables), (pair.flat, pair.flat_tables)):
            dynamodb.delete_table(TableName=tables["hashed"])
            dynamodb.delete_table(TableName=tables["ranged"])
            create_tables(dynamodb, tables["hashed"].removesuffix("hashed"))
        pair.both("put_item", {"TableName": "hashed", "Item": {**KEEP, "pk": {"S": "three"}}})
        stock, flat = pair.both("query", group_x)
        assert (1, stock) == (flat["Count"], flat)


# Rollback, case by case -----------------------------------------------------------------

KEEP = {"pk": {"S": "keep"}, "n": {"N": "5"}, "s": {"S": "old"}, "gk": {"S": "x"},
        "gs": {"N": "1"}}  # fmt: skip
ROW = {"pk": {"S": "p"}, "sk": {"N": "1"}, "n": {"N": "7"}}
FAILING_CHECK = {"ConditionCheck": {"TableName": "hashed", "Key": {"pk": {"S": "ghost"}},
                                    "ConditionExpression": "attribute_exists(pk)"}}  # fmt: skip
ROLLBACK_CASES = {
    "put of a new item": {"Put": {"TableName": "hashed", "Item": {
        "pk": {"S": "fresh"}, "n": {"N": "1"}, "gk": {"S": "x"}, "gs": {"N": "0"}}}},
    "overwrite of an item": {"Put": {"TableName": "hashed", "Item": {
        "pk": {"S": "keep"}, "n": {"N": "99"}, "gk": {"S": "y"}, "gs": {"N": "2"}}}},
    "in-place update with REMOVE": {"Update": {
        "TableName": "hashed", "Key": {"pk": {"S": "keep"}},
        "UpdateExpression": "SET n = n + :d, gk = :g REMOVE s",
        "ExpressionAttributeValues": {":d": {"N": "1"}, ":g": {"S": "y"}}}},
    "delete": {"Delete": {"TableName": "hashed", "Key": {"pk": {"S": "keep"}}}},
    "update creating an item in a new partition of a range table": {"Update": {
        "TableName": "ranged", "Key": {"pk": {"S": "new"}, "sk": {"N": "9"}},
        "UpdateExpression": "SET n = :v", "ExpressionAttributeValues": {":v": {"N": "3"}}}},
    "delete of a row of a range table": {"Delete": {
        "TableName": "ranged", "Key": {"pk": {"S": "p"}, "sk": {"N": "1"}}}},
}  # fmt: skip


@pytest.fixture
def seeded(servers: tuple[str, str]) -> tuple[Any, dict[str, str]]:
    """The embedded endpoint with KEEP in the hashed table and ROW in the ranged one."""
    dynamodb = client(servers[1], FLAT_REGION)
    tables = create_tables(dynamodb, f"rb{random.getrandbits(32):08x}-")
    dynamodb.put_item(TableName=tables["hashed"], Item=KEEP)
    dynamodb.put_item(TableName=tables["ranged"], Item=ROW)
    return dynamodb, tables


def _seen(dynamodb: Any, tables: dict[str, str]) -> dict[str, Any]:
    """Both tables' items, the GSI partition ``x``, and the number of stream records."""
    return {
        "hashed": dynamodb.scan(TableName=tables["hashed"])["Items"],
        "ranged": dynamodb.scan(TableName=tables["ranged"])["Items"],
        "index x": dynamodb.query(TableName=tables["hashed"], IndexName="by-group",
                                  KeyConditionExpression="gk = :g",
                                  ExpressionAttributeValues={":g": {"S": "x"}})["Items"],
        "stream records": len(stream(FLAT_REGION, tables["hashed"])),
    }  # fmt: skip


class TestRollback:
    @pytest.mark.parametrize("case", list(ROLLBACK_CASES))
    def test_a_cancelled_transaction_leaves_every_item_as_it_was(
        self, seeded: tuple[Any, dict[str, str]], case: str
    ) -> None:
        """A write followed by a failing condition check: cancelled, with the reasons
        ``[None, ConditionalCheckFailed]``, and the items, the index and the stream are
        exactly as before."""
        dynamodb, tables = seeded
        request = named({"TransactItems": [ROLLBACK_CASES[case], FAILING_CHECK]}, tables)
        answer = call(dynamodb, "transact_write_items", request)
        assert ["None", "ConditionalCheckFailed"] == [
            r["Code"] for r in answer["CancellationReasons"]
        ]
        assert {"hashed": [KEEP], "ranged": [ROW], "index x": [KEEP],
                "stream records": 1} == _seen(dynamodb, tables)  # fmt: skip

    def test_a_failing_condition_check_returns_the_old_item(
        self, seeded: tuple[Any, dict[str, str]]
    ) -> None:
        """ALL_OLD on a failing condition check puts the current item in its reason."""
        dynamodb, tables = seeded
        check = {"ConditionCheck": {"TableName": "hashed", "Key": {"pk": {"S": "keep"}},
                                    "ConditionExpression": "n > :v",
                                    "ExpressionAttributeValues": {":v": {"N": "5"}},
                                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}  # fmt: skip
        answer = call(dynamodb, "transact_write_items",
                      named({"TransactItems": [check]}, tables))  # fmt: skip
        assert [{"Code": "ConditionalCheckFailed", "Message": "The conditional request failed",
                 "Item": KEEP}] == answer["CancellationReasons"]  # fmt: skip

    def test_an_item_with_two_operations_leaves_nothing_behind(
        self, seeded: tuple[Any, dict[str, str]]
    ) -> None:
        """Refused as moto refuses it, but rolled back (stock moto keeps the writes before it)."""
        dynamodb, tables = seeded
        put = ROLLBACK_CASES["put of a new item"]
        both = {**ROLLBACK_CASES["delete"], **FAILING_CHECK}
        answer = call(dynamodb, "transact_write_items",
                      named({"TransactItems": [put, both]}, tables))  # fmt: skip
        assert 400 == answer["status"]
        assert {"hashed": [KEEP], "ranged": [ROW], "index x": [KEEP],
                "stream records": 1} == _seen(dynamodb, tables)  # fmt: skip


class TestNumbers:
    def test_sums_in_plain_digits_only_in_the_endpoints_thread(
        self, seeded: tuple[Any, dict[str, str]]
    ) -> None:
        """1 - 1.00000000 through the endpoint is stored as 0.00000000, which the next sum
        reads (stock moto stores 0E-8, then fails to add to it); a sum past 38 digits is
        refused as DynamoDB refuses it; moto's own arithmetic elsewhere is unchanged."""
        from moto.dynamodb.models.dynamo_type import DynamoType

        dynamodb, tables = seeded
        key = {"pk": {"S": "keep"}}
        for expression, values in (
            ("SET n = :a - :b", {":a": {"N": "1"}, ":b": {"N": "1.00000000"}}),
            ("SET n = n + :a", {":a": {"N": "2"}}),
        ):
            call(dynamodb, "update_item", named({
                "TableName": "hashed", "Key": key, "UpdateExpression": expression,
                "ExpressionAttributeValues": values,
            }, tables))  # fmt: skip
        stored = call(dynamodb, "get_item", named({"TableName": "hashed", "Key": key}, tables))
        assert {"N": "2.00000000"} == stored["Item"]["n"]
        values = {":a": {"N": "9" * 38}, ":b": {"N": "0.1"}}  # 39 significant digits
        past = {"TableName": "hashed", "Key": key, "UpdateExpression": "SET n = :a + :b",
                "ExpressionAttributeValues": values}  # fmt: skip
        refused = call(dynamodb, "update_item", named(past, tables))
        cancelled = call(dynamodb, "transact_write_items",
                         named({"TransactItems": [{"Update": past}]}, tables))  # fmt: skip
        digits = "Attempting to store more than 38 significant digits in a Number"
        assert (400, "ValidationException", digits) == (
            refused["status"], refused["Error"]["Code"], refused["Error"]["Message"],
        )  # fmt: skip
        assert [("ValidationError", digits)] == [
            (reason["Code"], reason["Message"]) for reason in cancelled["CancellationReasons"]
        ]
        assert "0E-8" == (DynamoType({"N": "1"}) - DynamoType({"N": "1.00000000"})).value

    def test_an_update_refused_for_its_sum_writes_nothing(
        self, seeded: tuple[Any, dict[str, str]]
    ) -> None:
        """``SET s = :x ADD n :big`` whose ADD passes 38 digits: ValidationException, and the
        SET is not left behind (moto computes ADD after applying SET, in place)."""
        dynamodb, tables = seeded
        request = {"TableName": "hashed", "Key": {"pk": {"S": "keep"}},
                   "UpdateExpression": "SET s = :x ADD n :big",
                   "ExpressionAttributeValues": {":x": {"S": "new"},
                                                 ":big": {"N": "9" * 37 + ".1"}}}  # fmt: skip
        answer = call(dynamodb, "update_item", named(request, tables))
        unchanged = {"hashed": [KEEP], "ranged": [ROW], "index x": [KEEP], "stream records": 1}
        assert (400, unchanged) == (answer["status"], _seen(dynamodb, tables))

    def test_a_string_compared_with_a_number_is_false_not_a_server_error(
        self, seeded: tuple[Any, dict[str, str]]
    ) -> None:
        """A Scan filtered on ``n > :zero`` over an item whose ``n`` is a string skips that
        item, as DynamoDB does (stock moto answers 500); moto's own comparison elsewhere
        is unchanged."""
        from moto.dynamodb.comparisons import AttributeValue, OpGreaterThan

        dynamodb, tables = seeded
        for pk, value in (("text", {"S": "5"}), ("number", {"N": "5"})):
            call(dynamodb, "put_item", named({"TableName": "hashed", "Item": {
                "pk": {"S": pk}, "n": value}}, tables))  # fmt: skip
        found = call(dynamodb, "scan", named({
            "TableName": "hashed", "FilterExpression": "n > :zero",
            "ExpressionAttributeValues": {":zero": {"N": "0"}},
        }, tables))  # fmt: skip
        assert (200, ["number"]) == (
            found.get("status", 200),
            [i["pk"]["S"] for i in found["Items"] if i["pk"]["S"] in ("text", "number")],
        )
        with pytest.raises(TypeError):
            OpGreaterThan(AttributeValue({"S": "5"}), AttributeValue({"N": "0"})).expr(None)


# The guard against table copies -------------------------------------------------------


class Counting:
    """Counts the items moto makes (new or copied) and the items its queries walk."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.dynamodb.models.table import Table

        self.made = self.walked = 0
        make, walk = Item.__new__, Table.all_items

        def counting_new(cls: type, *args: Any, **kwargs: Any) -> Any:
            self.made += 1
            return make(cls, *args, **kwargs)

        def counting_walk(table: Any) -> Any:
            items = walk(table)
            self.walked += len(items)
            return items

        monkeypatch.setattr(Item, "__new__", counting_new)
        monkeypatch.setattr(Table, "all_items", counting_walk)

    def per_call(self, calls: int, action: Callable[[int], object]) -> tuple[float, float]:
        self.made = self.walked = 0
        for n in range(calls):
            action(n)
        return self.made / calls, self.walked / calls


def _ledger_with_records(url: str, records: int) -> Ledger:
    ledger = Ledger(url, table_prefix=f"guard{records}-{random.getrandbits(32):08x}-")
    ledger.migrate()
    ledger.create_user("payer", balance="0")
    filler = operator_client(ledger)  # the test's own writes, not the library's
    for start in range(0, records, 25):
        filler.batch_write_item(RequestItems={ledger.table_names[1]: [
            {"PutRequest": {"Item": {
                "idempotencyKey": {"S": f"fill-{n}"}, "userId": {"S": f"filler{n % 50}"},
                "amount": {"N": "1"}, "type": {"S": "credit"},
                "timestamp": {"S": f"2024-01-01T00:00:00.{n:06d}Z"}}}}
            for n in range(start, min(start + 25, records))
        ]})  # fmt: skip
    return ledger


class TestNoTableCopies:
    def test_a_credit_and_a_history_page_cost_the_same_at_30_and_3000_records(
        self, servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Items moto makes per credit, and items its query walks per history page, do not
        depend on the size of Transactions on the embedded endpoint; on stock moto they
        grow with it (so the count would see table copies coming back)."""
        stock_url, flat_url = servers
        ledgers = {(name, size): _ledger_with_records(url, size)
                   for name, url in (("stock", stock_url), ("flat", flat_url))
                   for size in (30, 3000)}  # fmt: skip
        counting = Counting(monkeypatch)
        costs = {}
        for (name, size), ledger in ledgers.items():
            for n in range(3):  # the first page builds the endpoint's index of the GSI
                ledger.transact(idempotency_key=f"warm{n}", user_id="payer", amount="1",
                                type="credit")  # fmt: skip
            ledger.history("payer", limit=50)
            credit = counting.per_call(
                5,
                lambda n, ledger=ledger: ledger.transact(
                    idempotency_key=f"k{n}", user_id="payer", amount="1", type="credit"
                ),
            )
            page = counting.per_call(3, lambda n, ledger=ledger: ledger.history(
                "payer", limit=50))  # fmt: skip
            costs[name, size] = (credit[0], page[1])
        assert costs["flat", 30] == costs["flat", 3000]
        assert costs["flat", 3000][0] < 20
        assert costs["stock", 3000][0] > 3000
        assert costs["stock", 3000][1] > 3000
