"""Assets beyond ISO 4217, to 18 decimals: declared per deployment, exact end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest

from dynaledger import Ledger
from dynaledger.cli import main
from dynaledger.errors import (
    HoldExceeded,
    LedgerError,
    RefundExceeded,
    UserNotFound,
    ValidationError,
)
from dynaledger.money import EXACT, ISO, Currencies, parse_assets
from tests.conftest import unique

ASSETS = {"BTC": 8, "ETH": 18, "USDT": 6, "CHIPS": 0}
WEI = "0.000000000000000001"
#: 33 significant digits: the largest ETH amount with every decimal used.
BIG_ETH = "999999999999999.999999999999999999"


@pytest.fixture
def crypto(make_ledger: Callable[..., Ledger]) -> Ledger:
    """A migrated ledger that declares BTC, ETH, USDT and CHIPS."""
    ledger = make_ledger(assets=ASSETS)
    ledger.migrate()
    return ledger


class TestDeclaringAssets:
    def test_assets_come_from_the_environment(self) -> None:
        """DYNALEDGER_ASSETS='BTC:8,ETH:18' declares both for from_env."""
        env = {
            "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9",
            "DYNALEDGER_ASSETS": "BTC:8, ETH:18",
        }
        assert {"BTC": 8, "ETH": 18} == Ledger.from_env(env).assets

    @pytest.mark.parametrize(
        ("assets", "rule"),
        [
            ({"btc": 8}, "'btc' is not an asset code (2 to 12 of A-Z and 0-9, one letter)"),
            ({"B": 8}, "'B' is not an asset code (2 to 12 of A-Z and 0-9, one letter)"),
            ({"123": 8}, "'123' is not an asset code (2 to 12 of A-Z and 0-9, one letter)"),
            ({"LONGERTHAN12": 2, "THIRTEENCHAR1": 2},
             "'THIRTEENCHAR1' is not an asset code (2 to 12 of A-Z and 0-9, one letter)"),
            ({"ETH": 19}, "ETH: decimals must be 0 to 18"),
            ({"ETH": -1}, "ETH: decimals must be 0 to 18"),
            ({"ETH": True}, "ETH: decimals must be an int, not True"),
            ({"JPY": 2}, "JPY is ISO 4217 with 0 decimals, not 2"),
            ("BTC:8", "must map codes to decimals, not str"),
        ],
    )  # fmt: skip
    def test_bad_declarations_are_refused(self, assets: dict[str, int], rule: str) -> None:
        """Codes follow the pattern, decimals are 0 to 18, ISO codes keep their decimals."""
        with pytest.raises(ValidationError) as caught:
            Ledger("http://127.0.0.1:9", assets=assets)
        assert ("assets", rule) == (caught.value.field, caught.value.rule)

    def test_an_iso_code_with_its_own_decimals_is_accepted(self) -> None:
        """Declaring USD with 2 decimals changes nothing and is not an error."""
        assert 2 == Currencies({"USD": 2}).decimals("USD")

    @pytest.mark.parametrize(
        ("text", "rule"),
        [
            ("BTC", "'BTC' is not CODE:DECIMALS, such as BTC:8"),
            ("BTC:x", "'BTC:x' is not CODE:DECIMALS, such as BTC:8"),
            ("BTC:8,:2", "'' is not an asset code (2 to 12 of A-Z and 0-9, one letter)"),
            ("BTC:-1", "'BTC:-1' is not CODE:DECIMALS, such as BTC:8"),
            ("ETH:\u0668", "'ETH:\u0668' is not CODE:DECIMALS, such as BTC:8"),  # Arabic-Indic 8
            ("BTC:8,BTC:9", "BTC is declared twice"),
            ("BTC:8,,ETH:18", "'' is not CODE:DECIMALS, such as BTC:8"),
        ],
    )
    def test_a_malformed_variable_names_the_variable(self, text: str, rule: str) -> None:
        """A value of DYNALEDGER_ASSETS that is not CODE:DECIMALS entries, each code once, is a
        ValidationError naming the variable and the rule."""
        with pytest.raises(ValidationError) as caught:
            parse_assets(text, "DYNALEDGER_ASSETS")
        assert ("DYNALEDGER_ASSETS", rule) == (caught.value.field, caught.value.rule)

    def test_an_undeclared_asset_is_refused_before_anything_is_sent(self, ledger: Ledger) -> None:
        """A ledger without BTC declared refuses currency='BTC' with a ValidationError."""
        with pytest.raises(ValidationError, match="'BTC' is not a known ISO 4217 currency code"):
            ledger.create_user(unique("u"), currency="BTC")


class TestLimits:
    @pytest.mark.parametrize(
        ("currency", "largest_balance"),
        [
            ("JPY", "99999999999999999999999999999999999999"),
            ("USD", "999999999999999999999999999999999999.99"),
            ("BTC", "999999999999999999999999999999.99999999"),
            ("ETH", "99999999999999999999.999999999999999999"),
        ],
    )
    def test_the_largest_balance_uses_all_38_digits(
        self, currency: str, largest_balance: str
    ) -> None:
        """Each currency's largest balance is 38 significant digits at its decimals."""
        money = Currencies(ASSETS)
        assert (Decimal(largest_balance), Decimal(10**15)) == (
            money.max_balance(currency), money.max_amount(currency),
        )  # fmt: skip

    def test_amounts_past_the_limit_are_refused_before_anything_is_sent(
        self, crypto: Ledger
    ) -> None:
        """An ETH amount of 10**15 + 1 wei is a ValidationError on amount."""
        user_id = unique("eth")
        crypto.create_user(user_id, currency="ETH", balance="1")
        with pytest.raises(ValidationError) as caught:
            crypto.transact(idempotency_key=unique("k"), user_id=user_id, type="credit",
                            amount=f"1000000000000000.{WEI[2:]}", currency="ETH")  # fmt: skip
        assert "amount" == caught.value.field

    def test_a_hold_taken_back_past_the_largest_balance_is_refused_with_dynamodbs_reason(
        self, crypto: Ledger
    ) -> None:
        """The known edge: at the largest balance, hold 50, credit 50 (the balance is bounded
        alone), then void: DynamoDB refuses the 39-digit sum; LedgerError says so."""
        largest = Currencies().max_balance("USD")
        user = unique("top")
        crypto.create_user(user, balance=largest)
        hold = crypto.hold(idempotency_key=unique("h"), user_id=user, amount="50")
        crypto.transact(idempotency_key=unique("k"), user_id=user, amount="50", type="credit")
        with pytest.raises(LedgerError, match="more than 38 significant digits"):
            crypto.void(idempotency_key=unique("v"), hold_id=hold.hold_id)
        assert (largest, Decimal("50.00")) == (
            crypto.get_user_balance(user).amount, crypto.get_user_balance(user).held,
        )  # fmt: skip

    def test_a_starting_balance_past_the_largest_is_refused(self, crypto: Ledger) -> None:
        """create_user with more than the largest ETH balance is a ValidationError on balance."""
        with pytest.raises(ValidationError) as caught:
            crypto.create_user(unique("eth"), currency="ETH", balance="100000000000000000000")
        assert "balance" == caught.value.field

    @pytest.mark.parametrize(
        ("opening", "currency", "rule"),
        [
            ("0.55", "CHIPS", "the opening balance 0.55 has more decimals than CHIPS allows (0)"),
            ("0.55", "JPY", "the opening balance 0.55 has more decimals than JPY allows (0)"),
            (
                "1000000000000000000000",
                "ETH",
                "the opening balance must be at most 99999999999999999999.999999999999999999, "
                "got 1000000000000000000000.00",
            ),
        ],
    )
    def test_an_account_on_an_opening_balance_its_currency_cannot_hold_is_refused(
        self, make_ledger: Callable[..., Ledger], opening: str, currency: str, rule: str
    ) -> None:
        """The opening balance is held in the account's own currency: created without a
        balance, an account whose currency cannot hold it is refused, nothing written;
        given a balance, it is created."""
        ledger = make_ledger(assets=ASSETS, opening_balance=opening)
        ledger.migrate()
        user_id = unique("opening")
        with pytest.raises(ValidationError) as caught:
            ledger.create_user(user_id, currency=currency)
        assert ("balance", f"must be given for an account in {currency}: {rule}") == (
            caught.value.field, caught.value.rule,
        )  # fmt: skip
        with pytest.raises(UserNotFound):
            ledger.get_user_balance(user_id)
        ledger.create_user(user_id, currency=currency, balance=5)
        assert Decimal(5) == ledger.get_user_balance(user_id).amount


class TestEighteenDecimals:
    def test_wei_round_trip_through_every_operation(self, crypto: Ledger) -> None:
        """One wei and a 33-digit amount are exact through create, transact, transfer,
        balance, history and reconcile."""
        alice, bob = unique("alice"), unique("bob")
        crypto.create_user(alice, currency="ETH", balance="2")
        crypto.create_user(bob, currency="ETH", balance="0")
        credit = crypto.transact(idempotency_key=unique("k"), user_id=alice, amount=BIG_ETH,
                                 type="credit", currency="ETH")  # fmt: skip
        sent = crypto.transfer(idempotency_key=unique("t"), from_user_id=alice, to_user_id=bob,
                               amount=WEI)  # fmt: skip
        assert (Decimal(BIG_ETH), Decimal(WEI), "ETH") == (
            credit.amount,
            sent.amount,
            sent.currency,
        )
        expected = EXACT.subtract(EXACT.add(Decimal(BIG_ETH), 2), Decimal(WEI))
        assert Decimal("1000000000000001.999999999999999998") == expected
        assert (expected, Decimal(WEI)) == (
            crypto.get_user_balance(alice).amount, crypto.get_user_balance(bob).amount,
        )  # fmt: skip
        assert [Decimal(WEI), Decimal(BIG_ETH)] == [e.amount for e in crypto.history(alice).items]
        assert crypto.reconcile([alice, bob]).ok

    def test_a_refund_naming_a_currency_judges_the_amount_by_it_before_any_read(
        self, crypto: Ledger, count_requests: Callable[[Ledger], object]
    ) -> None:
        """Refunding 1.23456789 of a BTC credit as USD: ValidationError on amount (USD has
        2 decimals), with no request; named as BTC, the same amount is refunded."""
        user_id, credit = unique("btc"), unique("k")
        crypto.create_user(user_id, currency="BTC", balance="0")
        crypto.transact(idempotency_key=credit, user_id=user_id, amount="2", type="credit")
        counter = count_requests(crypto)
        with pytest.raises(ValidationError) as bad:
            crypto.refund(idempotency_key=unique("rf"), of=credit, amount="1.23456789",
                          currency="USD")  # fmt: skip
        assert ("amount", "1.23456789 has more decimals than USD allows (2)") == (
            bad.value.field, bad.value.rule,
        )  # fmt: skip
        assert {} == dict(counter.by_operation)  # type: ignore[attr-defined]
        refund = crypto.refund(idempotency_key=unique("rf"), of=credit, amount="1.23456789",
                               currency="BTC")  # fmt: skip
        assert (Decimal("1.23456789"), Decimal("0.76543211")) == (
            refund.amount, crypto.get_user_balance(user_id).amount,
        )  # fmt: skip

    def test_a_refund_past_the_original_is_refund_exceeded_up_to_the_largest_balance(
        self, crypto: Ledger
    ) -> None:
        """A ledger with an 18-decimal asset, a 10 USD debit: refunding 23 digits, or the
        largest USD balance, is RefundExceeded with 10 left (the amount is judged at 18
        decimals before the original's currency is known); 38 digits, past the largest USD
        balance, is a ValidationError naming it; 39 digits, before any read, naming 38 nines."""
        user_id, debit = unique("usd"), unique("k")
        crypto.create_user(user_id, balance="100")
        crypto.transact(idempotency_key=debit, user_id=user_id, amount="10", type="debit")
        largest = "999999999999999999999999999999999999.99"
        for amount in ("9" * 23, largest):
            with pytest.raises(RefundExceeded) as caught:
                crypto.refund(idempotency_key=unique("rf"), of=debit, amount=amount)
            assert (Decimal("10.00"), Decimal(amount)) == (caught.value.left, caught.value.amount)
        with pytest.raises(ValidationError) as past:
            crypto.refund(idempotency_key=unique("rf"), of=debit, amount="1" + "0" * 37)
        assert ("amount", f"must be at most {largest}, got 1{'0' * 37}") == (
            past.value.field, past.value.rule,
        )  # fmt: skip
        with pytest.raises(ValidationError) as no_balance:
            crypto.refund(idempotency_key=unique("rf"), of=debit, amount="1" + "0" * 38)
        assert (f"must be at most {'9' * 38} (no balance of any currency holds more), "
                f"got 1{'0' * 38}") == no_balance.value.rule  # fmt: skip

    def test_refusals_print_wei_as_digits_not_exponents(self, crypto: Ledger) -> None:
        """A capture of 5 wei from a hold of 2: HoldExceeded's message shows both amounts
        in plain digits (it printed 2E-18), as every other refusal does."""
        user, hold_id = unique("eth"), unique("h")
        crypto.create_user(user, currency="ETH", balance="1")
        crypto.hold(idempotency_key=hold_id, user_id=user, amount="0.000000000000000002")
        with pytest.raises(HoldExceeded) as caught:
            crypto.capture(idempotency_key=unique("c"), hold_id=hold_id,
                           amount="0.000000000000000005")  # fmt: skip
        assert (
            f"hold {hold_id!r} has 0.000000000000000002 ETH remaining, "
            "0.000000000000000005 ETH requested"
        ) == str(caught.value)

    def test_a_btc_account_takes_eight_decimals_without_naming_the_currency(
        self, crypto: Ledger
    ) -> None:
        """0.00000001 on a BTC account, currency not named, is one satoshi."""
        user_id = unique("btc")
        crypto.create_user(user_id, currency="BTC", balance="0.5")
        result = crypto.transact(idempotency_key=unique("k"), user_id=user_id,
                                 amount="0.00000001", type="debit")  # fmt: skip
        assert ("BTC", Decimal("0.49999999")) == (
            result.currency, crypto.get_user_balance(user_id).amount,
        )  # fmt: skip

    def test_balances_and_held_that_reach_zero_keep_moving(self, crypto: Ledger) -> None:
        """A BTC account debited to 0 is credited again; an ETH account whose hold was voided
        (held back to 0) holds again; a hold of one wei is voided: each write reads the
        number the one before left (a 0 at 8 or 18 decimals)."""
        btc, eth = unique("btc"), unique("eth")
        crypto.create_user(btc, currency="BTC", balance="1")
        crypto.create_user(eth, currency="ETH", balance=WEI)
        crypto.transact(idempotency_key=unique("k"), user_id=btc, amount="1", type="debit")
        crypto.transact(idempotency_key=unique("k"), user_id=btc, amount="0.5", type="credit")
        for _ in range(2):
            hold = crypto.hold(idempotency_key=unique("h"), user_id=eth, amount=WEI)
            crypto.void(idempotency_key=unique("v"), hold_id=hold.hold_id)
        balances = [crypto.get_user_balance(user) for user in (btc, eth)]
        assert [(Decimal("0.5"), Decimal(0)), (Decimal(WEI), Decimal(0))] == [
            (balance.amount, balance.held) for balance in balances
        ]
        assert crypto.reconcile([btc, eth]).ok

    def test_chips_have_no_decimals(self, crypto: Ledger) -> None:
        """CHIPS are whole: 1.5 chips is a ValidationError naming CHIPS."""
        user_id = unique("chips")
        crypto.create_user(user_id, currency="CHIPS", balance=100)
        with pytest.raises(ValidationError, match=r"more decimals than CHIPS allows \(0\)"):
            crypto.transact(idempotency_key=unique("k"), user_id=user_id, amount="1.5",
                            type="debit", currency="CHIPS")  # fmt: skip

    def test_the_cli_prints_wei_digit_for_digit_as_text_and_json(
        self, crypto: Ledger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """balance, transact and history show 0.000000000000000001, never 1E-18."""
        user_id = unique("wei")
        assets = "BTC:8,ETH:18,USDT:6,CHIPS:0"
        base = ["--endpoint", crypto.settings.endpoint_url or "", "--table-prefix",
                crypto.settings.table_prefix, "--assets", assets]  # fmt: skip
        assert 0 == main([*base, "create-user", user_id, "--currency", "ETH", "--balance", WEI])
        assert 0 == main([*base, "transact", "--key", unique("k"), "--user", user_id,
                          "--amount", WEI, "--type", "credit"])  # fmt: skip
        assert 0 == main([*base, "balance", user_id, "--json"])
        assert 0 == main([*base, "history", user_id])
        out = capsys.readouterr().out
        assert "E-" not in out
        balance = json.loads(out.splitlines()[2])
        assert ("0.000000000000000002", "ETH") == (balance["amount"], balance["currency"])
        lines = out.splitlines()
        assert lines[1].startswith(f"credit {WEI} ETH to {user_id}")
        assert f"  +{WEI} ETH  " in lines[3]


def test_iso_alone_knows_no_assets() -> None:
    """The module-level registry is ISO 4217 only."""
    assert (False, True) == (ISO.known("BTC"), ISO.known("KWD"))


class TestDeploymentSettings:
    """The opening balance, default currency and assets are stored with the tables."""

    def test_before_the_first_migrate_there_are_none(
        self, make_ledger: Callable[..., Ledger]
    ) -> None:
        """On a prefix never migrated (no migrations table) deployment_settings() is None."""
        assert make_ledger(table_prefix=f"{unique('none')}_").deployment_settings() is None

    def test_migrate_records_them_and_status_shows_them(
        self, crypto: Ledger, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The first migrate stores the ledger's settings; migrate --status prints them."""
        stored = crypto.deployment_settings()
        assert stored is not None
        assert (Decimal("100"), "USD", ASSETS) == (
            stored.opening_balance, stored.default_currency, stored.assets,
        )  # fmt: skip
        assert 0 == main(["--endpoint", crypto.settings.endpoint_url or "", "--table-prefix",
                          crypto.settings.table_prefix, "migrate", "--status"])  # fmt: skip
        last = capsys.readouterr().out.splitlines()[-1]
        expected = (
            "settings: opening balance 100.00, default currency USD, "
            "assets BTC:8,CHIPS:0,ETH:18,USDT:6"
        )
        assert expected == last

    @pytest.mark.parametrize(
        ("kwargs", "difference"),
        [
            ({"assets": {"BTC": 8}}, "assets are BTC:8,CHIPS:0,ETH:18,USDT:6 for the deployment, "
                                     "BTC:8 here"),
            ({"assets": ASSETS, "opening_balance": 0},
             "opening_balance is 100.00 for the deployment, 0.00 here"),
            ({"assets": ASSETS, "default_currency": "EUR"},
             "default_currency is USD for the deployment, EUR here"),
        ],
    )  # fmt: skip
    def test_a_ledger_that_disagrees_refuses_to_write(
        self, crypto: Ledger, kwargs: dict[str, object], difference: str
    ) -> None:
        """Other settings on the same tables: SettingsMismatch naming the difference, no write."""
        from dynaledger.errors import SettingsMismatch

        other = Ledger(crypto.settings.endpoint_url, table_prefix=crypto.settings.table_prefix,
                       **kwargs)  # type: ignore[arg-type]  # fmt: skip
        user_id = unique("u")
        with pytest.raises(SettingsMismatch) as caught:
            other.create_user(user_id)
        assert (difference,) == caught.value.differences
        with pytest.raises(SettingsMismatch):
            other.migrate()
        from dynaledger.errors import UserNotFound

        with pytest.raises(UserNotFound):
            crypto.get_user_balance(user_id)

    def test_the_check_costs_one_read_per_ledger_not_per_operation(
        self, crypto: Ledger, count_requests: Callable[[Ledger], object]
    ) -> None:
        """A new ledger reads the settings before its first write only."""
        other = Ledger(crypto.settings.endpoint_url, table_prefix=crypto.settings.table_prefix,
                       assets=ASSETS)  # fmt: skip
        counter = count_requests(other)
        user_id = unique("u")
        other.create_user(user_id)
        for n in range(3):
            other.transact(idempotency_key=f"{user_id}-{n}", user_id=user_id, amount=1,
                           type="credit")  # fmt: skip
        assert {"GetItem": 1, "TransactWriteItems": 4} == dict(counter.by_operation)  # type: ignore[attr-defined]

    def test_apply_adds_an_asset_and_refuses_to_change_one_in_use(self, crypto: Ledger) -> None:
        """Adding SOL is applied; changing the decimals of BTC, held by an account, is refused."""
        crypto.create_user(unique("btc"), currency="BTC", balance="1")
        base = {"endpoint_url": crypto.settings.endpoint_url,
                "table_prefix": crypto.settings.table_prefix}  # fmt: skip
        more = Ledger(**base, assets={**ASSETS, "SOL": 9})  # type: ignore[arg-type]
        assert {**ASSETS, "SOL": 9} == more.apply_settings().assets
        changed = Ledger(**base, assets={**ASSETS, "SOL": 9, "BTC": 9})  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as caught:
            changed.apply_settings()
        assert ("assets", "BTC is held by accounts; its decimals (8) cannot change") == (
            caught.value.field, caught.value.rule,
        )  # fmt: skip
        stored = crypto.deployment_settings()
        assert stored is not None
        assert 8 == stored.assets["BTC"]

    def test_the_opening_balance_cannot_change_under_accounts_that_rely_on_it(
        self, crypto: Ledger
    ) -> None:
        """An account created without a balance relies on the opening balance: apply refuses."""
        crypto.create_user(unique("opening"))
        other = Ledger(crypto.settings.endpoint_url, table_prefix=crypto.settings.table_prefix,
                       assets=ASSETS, opening_balance=50)  # fmt: skip
        with pytest.raises(ValidationError) as caught:
            other.apply_settings()
        assert "opening_balance" == caught.value.field
