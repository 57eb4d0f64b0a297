"""AsyncLedger: the same operations as coroutines, off the event loop, bounded."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from decimal import Decimal

import pytest

from dynaledger import AsyncLedger, Balance, Ledger, Leg
from dynaledger.errors import ConfigurationError, InsufficientFunds, UserNotFound, ValidationError
from tests import faultproxy
from tests.conftest import Proxied, unique


class TestAsyncLedger:
    def test_concurrent_tasks_apply_each_movement_once(self, ledger: Ledger) -> None:
        """Twenty credits gathered at once, then their replays: 20.00 added, replays flagged."""
        aledger = AsyncLedger(ledger, max_concurrency=8)
        user_id = unique("a")
        keys = [unique("k") for _ in range(20)]

        async def scenario() -> tuple[list[bool], list[bool], Balance]:
            await aledger.create_user(user_id, balance="0")
            credit = [aledger.transact(idempotency_key=k, user_id=user_id, amount="1.00",
                                       type="credit") for k in keys]  # fmt: skip
            first = await asyncio.gather(*credit)
            again = await asyncio.gather(*[aledger.transact(idempotency_key=k, user_id=user_id,
                                                            amount="1.00", type="credit")
                                           for k in keys])  # fmt: skip
            return (
                [r.replayed for r in first],
                [r.replayed for r in again],
                await aledger.get_user_balance(user_id),
            )

        first, again, balance = asyncio.run(scenario())
        assert ([False] * 20, [True] * 20, Decimal("20.00")) == (first, again, balance.amount)

    def test_credit_limits_as_coroutines(self, ledger: Ledger) -> None:
        """create_user(credit_limit=) and set_credit_limit await like the Ledger's; the floor
        follows the limit set."""
        aledger = AsyncLedger(ledger)
        user_id, key = unique("a"), unique("l")

        async def scenario() -> tuple[bool, bool, Decimal, Decimal]:
            await aledger.create_user(user_id, balance="0", credit_limit="5")
            first = await aledger.set_credit_limit(idempotency_key=key, user_id=user_id,
                                                   limit="8")  # fmt: skip
            again = await aledger.set_credit_limit(idempotency_key=key, user_id=user_id,
                                                   limit="8")  # fmt: skip
            await aledger.transact(idempotency_key=unique("d"), user_id=user_id, amount="8",
                                   type="debit")  # fmt: skip
            with pytest.raises(InsufficientFunds):
                await aledger.transact(idempotency_key=unique("d"), user_id=user_id,
                                       amount="0.01", type="debit")  # fmt: skip
            balance = await aledger.get_user_balance(user_id)
            return first.replayed, again.replayed, balance.amount, balance.credit_limit

        assert (False, True, Decimal("-8.00"), Decimal("8.00")) == asyncio.run(scenario())

    def test_the_event_loop_runs_while_a_call_is_stalled(
        self, ledger: Ledger, proxied: Proxied
    ) -> None:
        """A balance read held by the proxy leaves the loop free to run other callbacks."""
        hold = faultproxy.Hold("GetItem")
        through, _ = proxied(hold)
        user_id = unique("a")
        ledger.create_user(user_id)
        aledger = AsyncLedger(through)

        async def scenario() -> tuple[bool, bool, Decimal]:
            call = asyncio.create_task(aledger.get_user_balance(user_id))
            arrived = await asyncio.to_thread(hold.arrived.wait, 20)
            ticked = asyncio.Event()
            asyncio.get_running_loop().call_soon(ticked.set)
            await ticked.wait()  # the loop ran a callback while the request is held
            pending = not call.done()
            hold.release.set()
            return arrived, pending, (await call).amount

        try:
            assert (True, True, Decimal("100.00")) == asyncio.run(scenario())
        finally:
            hold.release.set()

    def test_errors_arrive_as_the_ledgers_exceptions(self, ledger: Ledger) -> None:
        """An unknown user and an overdraft raise the same exceptions as the sync ledger."""
        aledger = AsyncLedger(ledger)
        user_id = unique("a")
        ledger.create_user(user_id, balance="1")

        async def scenario() -> list[type[BaseException]]:
            outcomes = await asyncio.gather(
                aledger.get_user_balance(unique("ghost")),
                aledger.transact(idempotency_key=unique("k"), user_id=user_id, amount="5",
                                 type="debit"),
                return_exceptions=True,
            )  # fmt: skip
            return [type(outcome) for outcome in outcomes]

        assert [UserNotFound, InsufficientFunds] == asyncio.run(scenario())

    def test_concurrency_defaults_to_the_pool_size(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """No more calls run at once than the ledger has pooled connections, unless told."""
        assert [50, 7, 3] == [
            AsyncLedger(make_ledger()).max_concurrency,
            AsyncLedger(make_ledger(max_pool_connections=7)).max_concurrency,
            AsyncLedger(make_ledger(), max_concurrency=3).max_concurrency,
        ]
        with pytest.raises(ValidationError, match=r"^max_concurrency: "):
            AsyncLedger(make_ledger(), max_concurrency=0)

    def test_construction_takes_what_the_ledger_takes_and_refuses_the_rest(self) -> None:
        """from_env takes the environment as Ledger.from_env does (positionally too); a
        non-Ledger is a ValidationError on ledger (it was an AttributeError)."""
        env = {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9", "DYNALEDGER_TABLE_PREFIX": "e-"}
        built = AsyncLedger.from_env(env, max_concurrency=2)
        with pytest.raises(ValidationError) as caught:
            AsyncLedger("http://127.0.0.1:9")  # type: ignore[arg-type]
        assert ("e-", 2, "ledger", "must be a Ledger, not str") == (
            built.ledger.settings.table_prefix, built.max_concurrency,
            caught.value.field, caught.value.rule,
        )  # fmt: skip

    def test_migrate_flags_must_be_bools(self, make_ledger: Callable[..., Ledger]) -> None:
        """point_in_time_recovery='yes' is a ValidationError naming it, nothing created (it
        was taken as true)."""
        ledger = make_ledger()
        with pytest.raises(ValidationError) as caught:
            asyncio.run(AsyncLedger(ledger).migrate(point_in_time_recovery="yes"))  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            ledger.migrate(deletion_protection=1)  # type: ignore[arg-type]
        assert ("point_in_time_recovery", []) == (caught.value.field, [
            status.revision for status in ledger.migration_status() if status.applied
        ])  # fmt: skip

    def test_async_with_closes_the_ledger(
        self, ledger: Ledger, make_ledger: Callable[..., Ledger]
    ) -> None:
        """Leaving ``async with`` closes the threads and the ledger: a later call, async or
        not, raises ConfigurationError."""
        inner = make_ledger(table_prefix=ledger.settings.table_prefix)
        user_id = unique("a")
        ledger.create_user(user_id)

        async def scenario() -> tuple[Decimal, str]:
            async with AsyncLedger(inner) as aledger:
                amount = (await aledger.get_user_balance(user_id)).amount
            with pytest.raises(ConfigurationError) as closed:
                await aledger.get_user_balance(user_id)
            return amount, str(closed.value)

        assert (Decimal("100.00"), "this AsyncLedger was closed") == asyncio.run(scenario())
        with pytest.raises(ConfigurationError):
            inner.get_user_balance(user_id)


class TestEveryOperation:
    def test_every_ledger_operation_has_a_coroutine_of_the_same_name(self) -> None:
        """Each public method of Ledger but ``close`` (``aclose`` here) is a coroutine here."""
        operations = [
            name for name, member in inspect.getmembers(Ledger, inspect.isfunction)
            if not name.startswith("_") and name != "close"
        ]  # fmt: skip
        missing = [
            name for name in operations
            if not inspect.iscoroutinefunction(getattr(AsyncLedger, name, None))
        ]  # fmt: skip
        assert ([], True) == (missing, "transact" in operations)

    def test_schema_reads_and_seeds_as_coroutines(self, make_ledger: Callable[..., Ledger]) -> None:
        """Status, table settings, seeding and generating users answer as the sync ledger."""
        ledger = make_ledger()
        ledger.migrate()
        aledger = AsyncLedger(ledger)

        async def scenario() -> tuple[object, ...]:
            status = await aledger.migration_status()
            tables = await aledger.table_settings()
            seeded = await aledger.seed()
            generated = await aledger.generate_users(3)
            return status, tables, seeded.created, generated.created

        status, tables, seeded, generated = asyncio.run(scenario())
        assert (ledger.migration_status(), ledger.table_settings()) == (status, tables)
        assert (ledger.seed().skipped, 3) == (seeded, generated)


class TestAsyncRefundsAndPostings:
    def test_post_and_refund_are_coroutines_with_the_same_results(self, ledger: Ledger) -> None:
        """An awaited posting of 5 and its awaited refund: 5 moved, then given back."""
        aledger = AsyncLedger(ledger)
        house, player, key = unique("a"), unique("a"), unique("p")
        ledger.create_user(house, balance="10")
        ledger.create_user(player, balance="0")

        async def scenario() -> tuple[Decimal, Decimal, str]:
            posted = await aledger.post(idempotency_key=key, legs=[
                Leg(house, "5", "debit"), Leg(player, "5", "credit")])  # fmt: skip
            refunded = await aledger.refund(idempotency_key=unique("r"), of=key)
            return posted.amount, refunded.amount, refunded.kind

        assert (Decimal("5.00"), Decimal("5.00"), "posting") == asyncio.run(scenario())
        assert Decimal("10.00") == ledger.get_user_balance(house).amount
