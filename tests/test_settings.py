"""Settings from the environment: every deployment setting, named variables, clear errors."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from dynaledger import Ledger, RetryPolicy
from dynaledger.cli import main
from dynaledger.errors import ValidationError
from dynaledger.settings import LAYOUT_VARIABLES, SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"


class TestFromEnv:
    def test_every_setting_is_read(self, dynamodb_endpoint: str) -> None:
        """Each documented variable reaches the ledger it builds."""
        ledger = Ledger.from_env({
            "AWS_ENDPOINT_URL": dynamodb_endpoint,
            "AWS_DEFAULT_REGION": "eu-west-1",
            "DYNALEDGER_TABLE_PREFIX": "env-",
            "DYNALEDGER_OPENING_BALANCE": "20",
            "DYNALEDGER_DEFAULT_CURRENCY": "EUR",
            "DYNALEDGER_MAX_ATTEMPTS": "3",
            "DYNALEDGER_RETRY_BASE_DELAY": "0.5",
            "DYNALEDGER_RETRY_MAX_DELAY": "2",
            "DYNALEDGER_CONNECT_TIMEOUT": "1.5",
            "DYNALEDGER_READ_TIMEOUT": "4",
            "DYNALEDGER_DEADLINE": "6.5",
            "DYNALEDGER_MAX_POOL_CONNECTIONS": "12",
        })  # fmt: skip
        settings = ledger.settings
        assert (
            dynamodb_endpoint, "eu-west-1", "env-", Decimal("20.00"), "EUR",
            RetryPolicy(3, 0.5, 2.0), 1.5, 4.0, 6.5, 12,
        ) == (
            settings.endpoint_url, settings.region, settings.table_prefix,
            ledger.opening_balance, ledger.default_currency, ledger._ctx.retry,
            settings.connect_timeout, settings.read_timeout, ledger.deadline,
            settings.max_pool_connections,
        )  # fmt: skip

    def test_unset_and_empty_variables_keep_the_defaults(self) -> None:
        """An empty environment gives the documented defaults."""
        ledger = Ledger.from_env(
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "DYNALEDGER_DEADLINE": ""}
        )
        assert (RetryPolicy(), 10.0, 5.0, None, 50, "") == (
            ledger._ctx.retry, ledger.settings.read_timeout, ledger.settings.connect_timeout,
            ledger.deadline, ledger.settings.max_pool_connections, ledger.settings.table_prefix,
        )  # fmt: skip

    def test_keyword_arguments_win(self) -> None:
        """An override beats its variable."""
        ledger = Ledger.from_env(
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "DYNALEDGER_DEADLINE": "3"}, deadline=9
        )
        assert 9 == ledger.deadline

    def test_numbers_in_the_forms_float_and_int_read_are_kept(self) -> None:
        """``.5``, ``5.``, ``+2`` and ``5e-1`` read as before; only other scripts' digits
        and ``_`` are refused."""
        ledger = Ledger.from_env(
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "DYNALEDGER_DEADLINE": ".5",
             "DYNALEDGER_READ_TIMEOUT": "5.", "DYNALEDGER_MAX_ATTEMPTS": "+2",
             "DYNALEDGER_RETRY_BASE_DELAY": "5e-1"}
        )  # fmt: skip
        assert (0.5, 5.0, 2, 0.5) == (
            ledger.deadline, ledger.settings.read_timeout, ledger._ctx.retry.max_attempts,
            ledger._ctx.retry.base_delay,
        )  # fmt: skip

    def test_a_variable_whose_argument_is_given_is_not_read(self) -> None:
        """A bad value in a variable the caller overrides is not an error: the variable is
        not read (``retry`` given skips every retry variable)."""
        bad = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "DYNALEDGER_DEADLINE": "soon",
               "DYNALEDGER_MAX_ATTEMPTS": "0", "DYNALEDGER_RETRY_MAX_DELAY": "x"}  # fmt: skip
        policy = RetryPolicy(max_attempts=2)
        ledger = Ledger.from_env(bad, deadline=5, retry=policy)
        assert (5, policy) == (ledger.deadline, ledger._ctx.retry)

    @pytest.mark.parametrize(
        ("variable", "value", "rule"),
        [
            ("DYNALEDGER_DEADLINE", "soon", "must be a number of seconds, not 'soon'"),
            ("DYNALEDGER_DEADLINE", "0", "must be a number of seconds above 0, not '0'"),
            ("DYNALEDGER_READ_TIMEOUT", "inf", "must be a number of seconds above 0, not 'inf'"),
            # ASCII without "_": float() and int() take these.
            ("DYNALEDGER_DEADLINE", "\u0665", "must be a number of seconds, not '\u0665'"),
            ("DYNALEDGER_RETRY_MAX_DELAY", "1_0", "must be a number of seconds, not '1_0'"),
            ("DYNALEDGER_MAX_ATTEMPTS", "\u0663", "must be a whole number, not '\u0663'"),
            ("DYNALEDGER_CONNECT_TIMEOUT", "-1", "must be a number of seconds above 0, not '-1'"),
            ("DYNALEDGER_MAX_ATTEMPTS", "0", "must be at least 1, not '0'"),
            ("DYNALEDGER_MAX_ATTEMPTS", "2.5", "must be a whole number, not '2.5'"),
            ("DYNALEDGER_RETRY_BASE_DELAY", "-0.1",
             "must be a number of seconds 0 or more, not '-0.1'"),
            ("DYNALEDGER_RETRY_MAX_DELAY", "x", "must be a number of seconds, not 'x'"),
            ("DYNALEDGER_MAX_POOL_CONNECTIONS", "many", "must be a whole number, not 'many'"),
            ("DYNALEDGER_OPENING_BALANCE", "1.001", "1.001 has more decimals than USD allows (2)"),
            ("DYNALEDGER_DEFAULT_CURRENCY", "usd", "'usd' is not a known ISO 4217 currency code"),
            ("AWS_REGION", "bad region!", "must be a region name such as eu-west-1 (letters, "
                                          "digits, '-', not digits alone), not 'bad region!'"),
            ("AWS_REGION", "0", "must be a region name such as eu-west-1 (letters, digits, "
                                "'-', not digits alone), not '0'"),  # botocore refuses it
            ("DYNALEDGER_OPENING_BALANCE", "-1", "must not be negative, got -1"),
            ("DYNALEDGER_USERS_TABLE", "U",
             "U (1 character with the prefix) must be 3 to 255 characters"),
            ("DYNALEDGER_TABLE_PREFIX", "p" * 250,
             f"{'p' * 40}… (262 characters with the prefix) must be 3 to 255 characters"),
            ("DYNALEDGER_TABLE_PREFIX", "p" * 256,
             f"{'p' * 40}… (261 characters with the prefix) must be 3 to 255 characters"),
            ("DYNALEDGER_TABLE_PREFIX", "my env",
             "must be letters, digits, '_', '-' or '.', not 'my env'"),
        ],
    )  # fmt: skip
    def test_a_bad_value_is_a_validation_error_naming_the_variable(
        self, variable: str, value: str, rule: str
    ) -> None:
        """Bad values raise ValidationError whose field is the variable."""
        with pytest.raises(ValidationError) as caught:
            Ledger.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", variable: value})
        assert (variable, f"{variable}: {rule}") == (caught.value.field, str(caught.value))

    def test_the_cli_reports_a_bad_variable_in_one_line(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The CLI reads the same variables and exits 1 with the variable's name."""
        monkeypatch.setenv("DYNALEDGER_DEADLINE", "soon")
        code = main(["--endpoint", "http://127.0.0.1:9", "balance", "alice"])
        assert (1, "error: DYNALEDGER_DEADLINE: must be a number of seconds, not 'soon'\n") == (
            code, capsys.readouterr().err,
        )  # fmt: skip

    def test_the_readme_documents_every_variable(self) -> None:
        """The README's settings table lists exactly the variables read, assets and layout last."""
        text = README.read_text(encoding="utf-8")
        start = text.index("## Settings from the environment")
        documented = re.findall(r"^\| `([A-Z_]+)` \|", text[start:], re.M)
        read = [
            *(setting.variable for setting in SETTINGS),
            "DYNALEDGER_ASSETS",
            *LAYOUT_VARIABLES.values(),
        ]
        assert read == documented


class TestArguments:
    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"region": "bad region!"}, "region"),
            ({"clock": 5}, "clock"),
            ({"table_prefix": "a b"}, "table_prefix"),
            ({"read_timeout": 0}, "read_timeout"),
            ({"max_pool_connections": True}, "max_pool_connections"),
            ({"botocore_config": {}}, "botocore_config"),
            ({"retry": 3}, "retry"),
            ({"layout": "x"}, "layout"),
        ],
    )
    def test_a_bad_argument_is_a_validation_error_naming_it(
        self, arguments: dict[str, object], field: str
    ) -> None:
        """Refused when the Ledger is made, before any request, naming the argument."""
        with pytest.raises(ValidationError) as caught:
            Ledger("http://127.0.0.1:9", **arguments)  # type: ignore[arg-type]
        assert field == caught.value.field

    def test_an_empty_region_is_no_region(self) -> None:
        """region="" (an unset variable passed on) is as None: the local default here."""
        assert "us-east-1" == Ledger("http://127.0.0.1:9", region="").settings.region

    @pytest.mark.parametrize(
        ("arguments", "field"),
        [
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": "3"}, "max_attempts"),
            ({"base_delay": -1}, "base_delay"),
            ({"max_delay": float("nan")}, "max_delay"),
        ],
    )
    def test_a_bad_retry_policy_is_a_validation_error_naming_it(
        self, arguments: dict[str, object], field: str
    ) -> None:
        """RetryPolicy refuses what it cannot back off by, naming the argument."""
        from dynaledger import RetryPolicy

        with pytest.raises(ValidationError) as caught:
            RetryPolicy(**arguments)  # type: ignore[arg-type]
        assert field == caught.value.field
