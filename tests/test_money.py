"""Exact money rules: parsing and validation of amounts, currencies and identifiers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dynaledger.errors import ValidationError
from dynaledger.money import (
    MAX_AMOUNT,
    Currencies,
    parse_amount,
    parse_balance,
    present,
    validate_currency,
    validate_identifier,
)


class TestParseAmount:
    def test_a_string_parsed_before_is_judged_again_for_each_currency(self) -> None:
        """Remembered parses are per currency; refusals are not remembered; past the
        bound it starts again and stays right."""
        money = Currencies(assets={"CHIPS": 0})
        assert Decimal("1.50") == money.parse_amount("1.5", "USD")
        assert Decimal("1.5") == money.parse_amount("1.5", None)
        for _ in range(2):
            with pytest.raises(ValidationError) as caught:
                money.parse_amount("1.5", "CHIPS", field="to_pay")
            assert ("to_pay", "1.5 has more decimals than CHIPS allows (0)") == (
                caught.value.field, caught.value.rule,
            )  # fmt: skip
        for cents in range(1, 1500):
            assert Decimal(cents).scaleb(-2) == money.parse_amount(f"{cents / 100:.2f}", "USD")
        assert Decimal("1.50") == money.parse_amount("1.5", "USD")
        with pytest.raises(ValidationError, match="must be greater than zero"):
            money.parse_amount("0", "USD")

    @pytest.mark.parametrize(
        ("value", "currency", "expected"),
        [
            ("12.34", "USD", Decimal("12.34")),
            ("12.3", "USD", Decimal("12.30")),
            (Decimal("0.10"), "USD", Decimal("0.10")),
            (5, "USD", Decimal("5.00")),
            (0.1, "USD", Decimal("0.10")),
            ("1500", "JPY", Decimal("1500")),
            ("1.234", "KWD", Decimal("1.234")),
            (Decimal("1E+2"), "USD", Decimal("100.00")),
            ("1E+2", "USD", Decimal("100.00")),  # a str with an exponent reads as Decimal does
            ("1e3", "USD", Decimal("1000.00")),
            ("2.5e-1", "USD", Decimal("0.25")),
            ("1.000", "USD", Decimal("1.00")),
            (str(MAX_AMOUNT), "USD", Decimal("1000000000000000.00")),
        ],
    )
    def test_accepts_exact_amounts_and_quantizes_to_the_minor_unit(
        self, value: object, currency: str, expected: Decimal
    ) -> None:
        """Valid amounts come back exact, with the currency's number of decimals."""
        result = parse_amount(value, currency)
        assert expected == result
        assert expected.as_tuple().exponent == result.as_tuple().exponent

    @pytest.mark.parametrize(
        ("value", "currency", "rule"),
        [
            (True, "USD", "not a bool"),
            (None, "USD", "not NoneType"),
            ([1], "USD", "not list"),
            ("", "USD", "not a decimal number"),
            (" 1", "USD", "not a decimal number"),
            ("1,000", "USD", "not a decimal number"),
            ("1_000", "USD", "not a decimal number"),
            ("1e", "USD", "not a decimal number"),
            ("-1", "USD", "must not be negative, got -1"),
            ("NaN", "USD", "not a decimal number"),
            ("0x10", "USD", "not a decimal number"),
            ("١٢", "USD", "not a decimal number"),
            (Decimal("NaN"), "USD", "must be finite"),
            (Decimal("Infinity"), "USD", "must be finite"),
            (float("inf"), "USD", "must be finite"),
            (float("nan"), "USD", "must be finite"),
            (Decimal("-0"), "USD", "must not be negative"),
            (-5, "USD", "must not be negative"),
            (0, "USD", "greater than zero"),
            ("0.00", "USD", "greater than zero"),
            ("0.001", "USD", "more decimals than USD allows (2)"),
            (0.125, "USD", "more decimals than USD allows (2)"),
            ("1.5", "JPY", "more decimals than JPY allows (0)"),
            (MAX_AMOUNT + 1, "USD", "must be at most"),
            ("1" * 39, "USD", "must be at most"),
            (Decimal("1E-1000000"), "USD", "more decimals"),
            ("1e-3", "USD", "more decimals than USD allows (2)"),
            ("1e16", "USD", "must be at most"),
            ("1e" + "9" * 19, "USD", "has an exponent out of range"),
            ("1e-" + "9" * 19, "USD", "has an exponent out of range"),
        ],
    )
    def test_rejects_bad_amounts_naming_the_field_and_rule(
        self, value: object, currency: str, rule: str
    ) -> None:
        """Bad amounts raise ValidationError (also a ValueError) naming the field and the rule."""
        with pytest.raises(ValidationError) as caught:
            parse_amount(value, currency)
        assert caught.value.field == "amount"
        assert rule in caught.value.rule
        assert isinstance(caught.value, ValueError)

    def test_three_credits_of_ten_cents_make_thirty_cents(self) -> None:
        """Sums of parsed amounts are exact, unlike floats."""
        total = sum((parse_amount("0.10", "USD") for _ in range(3)), Decimal(0))
        assert Decimal("0.30") == total

    def test_a_starting_balance_may_be_zero(self) -> None:
        """Zero is a valid balance, though not a valid amount to move."""
        assert Decimal("0.00") == parse_balance("0", "USD")


class TestCurrency:
    def test_known_codes_pass(self) -> None:
        """ISO 4217 codes are accepted as written."""
        assert ["USD", "EUR", "JPY", "KWD"] == [
            validate_currency(c) for c in ("USD", "EUR", "JPY", "KWD")
        ]

    @pytest.mark.parametrize("code", ["usd", "XXX", "", "DOLLARS", 840])
    def test_unknown_codes_are_rejected(self, code: object) -> None:
        """Anything but a known upper-case ISO 4217 code is a ValidationError on currency."""
        with pytest.raises(ValidationError) as caught:
            validate_currency(code)
        assert "currency" == caught.value.field

    def test_present_shows_the_minor_unit_only_when_exact(self) -> None:
        """Stored numbers gain trailing zeros for display but never lose digits."""
        assert "5.00" == str(present(Decimal("5"), "USD"))
        assert "5.005" == str(present(Decimal("5.005"), "USD"))


class TestIdentifiers:
    @pytest.mark.parametrize("value", ["a", "x" * 255, "用户-1", "émile", "a b", "👩‍💻"])
    def test_printable_text_up_to_255_characters_is_accepted(self, value: str) -> None:
        """Ids and keys may be any printable text, unicode included."""
        assert value == validate_identifier(value, "user_id")

    def test_the_first_forbidden_character_is_named_wherever_it_is(self) -> None:
        """Every C0 and C1 control and every lone surrogate is refused, the first one named."""
        forbidden = [*range(0x20), *range(0x7F, 0xA0), 0xD800, 0xDBFF, 0xDC00, 0xDFFF]
        for code in forbidden:
            rule = "lone surrogates" if code >= 0xD800 else "control characters"
            with pytest.raises(ValidationError) as caught:
                validate_identifier(f"ok-{chr(code)}-\x01", "user_id")
            assert f"must not contain {rule} (found U+{code:04X})" == caught.value.rule
        for code in (0x20, 0x7E, 0xA0, 0xD7FF, 0xE000, 0xFFFD, 0x1F600):
            assert f"ok-{chr(code)}" == validate_identifier(f"ok-{chr(code)}", "user_id")

    @pytest.mark.parametrize(
        ("value", "rule"),
        [
            ("", "must not be empty"),
            ("x" * 256, "at most 255 characters"),
            ("   ", "only whitespace"),
            ("a\x00b", "control characters"),
            ("a\nb", "control characters"),
            ("a\x1fb", "control characters"),
            ("a\x85b", "control characters"),
            ("a\ud800b", "lone surrogates"),
            (42, "must be a str"),
            (None, "must be a str"),
        ],
    )
    def test_bad_identifiers_are_rejected(self, value: object, rule: str) -> None:
        """Empty, over-long, control characters, surrogates and non-str are refused."""
        with pytest.raises(ValidationError) as caught:
            validate_identifier(value, "idempotency_key")
        assert "idempotency_key" == caught.value.field
        assert rule in caught.value.rule
