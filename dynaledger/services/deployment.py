"""The deployment's settings: recorded by migrate, checked once per ledger before it writes.

A ledger configured with another opening balance, default currency or set of
assets than the deployment would read and write balances differently from the
others on the same tables. ``migrate`` stores the settings beside the
migration records; the first write of each :class:`~dynaledger.Ledger` reads
them once (one ``GetItem`` for the ledger's lifetime, none per operation) and,
if they differ, every write raises :class:`~dynaledger.errors.SettingsMismatch`
naming the differences. :func:`apply` is the one way to change them.
"""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import PutError

from dynaledger import values
from dynaledger.errors import SettingsMismatch, UnreadableRecord, ValidationError
from dynaledger.models.deployment import SETTINGS_KEY
from dynaledger.money import Currencies, parse_assets
from dynaledger.services._core import Context, error_code, run

_CHANGE_HINT = "use the deployment's settings, or change them with `dynaledger settings --apply`"


def configured(ctx: Context) -> values.DeploymentSettings:
    """The settings this ledger was built with."""
    return values.DeploymentSettings(
        ctx.opening_balance, ctx.default_currency, dict(ctx.currencies.assets)
    )


def stored(ctx: Context) -> values.DeploymentSettings | None:
    """The deployment's recorded settings (one strongly consistent read), or None before migrate."""
    model = ctx.models.deployment
    table = model.Meta.table_name

    def attempt() -> dict[str, Any] | None:
        response = ctx.models.connection.get_item(table, SETTINGS_KEY, consistent_read=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    raw = run(ctx, attempt)
    if raw is None:
        return None
    try:
        item = model.from_raw_data(raw)
        assets = parse_assets(item.assets or "")
        Currencies(assets).validate(item.default_currency)
    except (ValueError, TypeError) as error:
        raise UnreadableRecord(table, SETTINGS_KEY, str(error)) from error
    if item.opening_balance is None or not item.opening_balance.is_finite():
        raise UnreadableRecord(table, SETTINGS_KEY, "no finite openingBalance")
    return values.DeploymentSettings(item.opening_balance, item.default_currency, assets)


def differences(
    deployment: values.DeploymentSettings, ledger: values.DeploymentSettings
) -> list[str]:
    """Each setting in which ``ledger`` differs from ``deployment``, both values named."""
    found = []
    if deployment.opening_balance != ledger.opening_balance:
        found.append(
            f"opening_balance is {deployment.opening_balance:f} for the deployment, "
            f"{ledger.opening_balance:f} here"
        )
    if deployment.default_currency != ledger.default_currency:
        found.append(
            f"default_currency is {deployment.default_currency} for the deployment, "
            f"{ledger.default_currency} here"
        )
    if deployment.assets != ledger.assets:
        found.append(
            f"assets are {_assets_text(deployment.assets) or 'none'} for the deployment, "
            f"{_assets_text(ledger.assets) or 'none'} here"
        )
    return found


def record(ctx: Context) -> values.DeploymentSettings:
    """Store this ledger's settings as the deployment's when none are stored yet.

    Raises:
        SettingsMismatch: Other settings are stored; nothing is changed.
    """
    mine = configured(ctx)
    if not _put(ctx, mine, expected=None):
        current = stored(ctx)
        if current is not None and (found := differences(current, mine)):
            raise SettingsMismatch(found, _CHANGE_HINT)
    ctx.settings_check.passed()
    return mine


def ensure(ctx: Context) -> None:
    """Refuse to write unless this ledger's settings are the deployment's; reads once per ledger.

    Raises:
        SettingsMismatch: They differ, or none are stored (run migrate).
    """
    if ctx.settings_check.ok:
        return
    with ctx.settings_check.lock:
        if ctx.settings_check.ok:
            return
        current = stored(ctx)
        if current is None:
            raise SettingsMismatch(["none are stored"], "run `dynaledger migrate`")
        found = differences(current, configured(ctx))
        if found:
            raise SettingsMismatch(found, _CHANGE_HINT)
        ctx.settings_check.passed()


def apply(ctx: Context) -> values.DeploymentSettings:
    """Make this ledger's settings the deployment's, if nothing depends on what they change.

    Refused (with ``ValidationError`` naming the setting) when an account holds
    an asset whose decimals would change or that would be dropped, when an
    account without a stored currency exists and the default currency would
    change, or when an account relies on the opening balance (none stored)
    and it would change. Scans the Users table: a maintenance command.
    """
    mine = configured(ctx)
    current = stored(ctx)
    if current is None:
        return record(ctx)
    for code, places in current.assets.items():
        if mine.assets.get(code) != places and _accounts_holding(ctx, code):
            raise ValidationError(
                "assets", f"{code} is held by accounts; its decimals ({places}) cannot change"
            )
    if current.default_currency != mine.default_currency and _accounts_holding(ctx, None):
        raise ValidationError(
            "default_currency", "accounts without a stored currency hold the current default"
        )
    if current.opening_balance != mine.opening_balance and _accounts_on_opening_balance(ctx):
        raise ValidationError(
            "opening_balance", "accounts without a stored opening balance rely on the current one"
        )
    if differences(current, mine) and not _put(ctx, mine, expected=current):
        raise SettingsMismatch(["they changed while being applied"], "run the command again")
    ctx.settings_check.passed()
    return mine


def _put(
    ctx: Context, settings: values.DeploymentSettings, expected: values.DeploymentSettings | None
) -> bool:
    """Write the settings item if it is absent (or, with ``expected``, still as expected)."""
    model = ctx.models.deployment
    item = model(
        SETTINGS_KEY,
        opening_balance=settings.opening_balance,
        default_currency=settings.default_currency,
        assets=_assets_text(settings.assets),
        updated_at=ctx.now(),
    )
    if expected is None:
        condition = model.key.does_not_exist()
    else:
        condition = (
            (model.opening_balance == expected.opening_balance)
            & (model.default_currency == expected.default_currency)
            & (model.assets == _assets_text(expected.assets))
        )

    def attempt() -> bool:
        try:
            item.save(condition=condition)
        except PutError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    return run(ctx, attempt)


def _accounts_holding(ctx: Context, currency: str | None) -> bool:
    """True if any account holds ``currency`` (None: any account with no stored currency)."""
    model = ctx.models.user
    condition = model.currency.does_not_exist() if currency is None else model.currency == currency
    return _any(ctx, condition)


def _accounts_on_opening_balance(ctx: Context) -> bool:
    return _any(ctx, ctx.models.user.opening_balance.does_not_exist())


def _any(ctx: Context, condition: Any) -> bool:
    model = ctx.models.user
    return run(ctx, lambda: any(True for _ in model.scan(condition, consistent_read=True)))


def _assets_text(assets: dict[str, int]) -> str:
    return ",".join(f"{code}:{places}" for code, places in sorted(assets.items()))
