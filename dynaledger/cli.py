"""The ``dynaledger`` command: serve, migrate, seed, move money and read it back.

Expected failures print one line on stderr and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from dynaledger import __version__, iam, local, values
from dynaledger.errors import LedgerError, ValidationError
from dynaledger.ledger import Ledger
from dynaledger.models import TableLayout
from dynaledger.money import DECIMAL_NUMBER, WHOLE_NUMBER, parse_assets
from dynaledger.serialize import as_dict
from dynaledger.settings import LAYOUT_VARIABLES, layout_from_env

Handler = Callable[[argparse.Namespace, Ledger], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "serve":
        return _guarded(lambda: _serve(args))
    if args.command == "iam-policy":
        return _guarded(lambda: _iam_policy(args))
    if args.command == "demo":
        return _guarded(lambda: _demo(args))
    handler: Handler = args.handler
    return _guarded(lambda: handler(args, _ledger(args)))


def _one_line(message: str) -> str:
    """``message`` as one line: a server's answer quoted in it (an HTML error page from
    something that is not DynamoDB) is folded, and cut at 500 characters."""
    if "\n" not in message and "\r" not in message:
        return message
    return textwrap.shorten(" ".join(message.split()), 500, placeholder=" [...]")


def _guarded(action: Callable[[], int]) -> int:
    try:
        code = action()
        sys.stdout.flush()  # here, not at exit, so that a reader gone early is seen below
    except LedgerError as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left (``| head``): stop quietly, as other tools do
        # Python flushes stdout again at exit; point it where that cannot fail.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def _endpoint(args: argparse.Namespace) -> str | None:
    return (
        args.endpoint
        or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        or os.environ.get("AWS_ENDPOINT_URL")
    )


def _demo(args: argparse.Namespace) -> int:
    """The demo, on ledgers of this command's settings, with the asset it shows (BTC) added."""
    from dynaledger.demo import DEMO_ASSETS, run_demo

    if args.assets is not None:
        given = parse_assets(args.assets, "--assets")
    else:
        given = parse_assets(os.environ.get("DYNALEDGER_ASSETS", ""), "DYNALEDGER_ASSETS")
    prefix = _table_prefix(args)

    def make(url: str, table_prefix: str, **more: Any) -> Ledger:
        assets = {**given, **DEMO_ASSETS}  # its BTC steps need BTC:8
        return _ledger(args, endpoint_url=url, table_prefix=table_prefix, assets=assets, **more)

    return run_demo(_endpoint(args), prefix, out=print, make=make)


def _table_prefix(args: argparse.Namespace) -> str | None:
    """``--table-prefix``, else ``$DYNALEDGER_TABLE_PREFIX``; None when neither names one."""
    if args.table_prefix is not None:
        return str(args.table_prefix)
    return os.environ.get("DYNALEDGER_TABLE_PREFIX") or None


def _ledger(args: argparse.Namespace, **fixed: Any) -> Ledger:
    """A ledger of the command's options, else the environment; ``fixed`` wins over both."""
    overrides: dict[str, Any] = {}
    if args.endpoint:
        overrides["endpoint_url"] = args.endpoint
    if args.region:
        overrides["region"] = args.region
    if args.table_prefix is not None:
        overrides["table_prefix"] = args.table_prefix
    if any(getattr(args, field, None) is not None for field in LAYOUT_VARIABLES):
        overrides["layout"] = _layout(args)  # else from_env reads the layout variables
    if getattr(args, "assets", None) is not None:
        overrides["assets"] = parse_assets(args.assets, "--assets")
    return Ledger.from_env(**{**overrides, **fixed})


def _layout(args: argparse.Namespace) -> TableLayout:
    return layout_from_env(
        os.environ,
        users_table=getattr(args, "users_table", None),
        transactions_table=getattr(args, "transactions_table", None),
        migrations_table=getattr(args, "migrations_table", None),
        idempotency_key_attribute=getattr(args, "idempotency_key_attribute", None),
    )


def _serve(args: argparse.Namespace) -> int:
    def ready(url: str) -> None:
        # Ctrl-C and SIGTERM stop the server even when this process was started with
        # SIGINT ignored (as background jobs of a non-interactive shell are).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        print(f"DynamoDB endpoint (in memory) listening on {url}; Ctrl-C stops it", flush=True)

    local.serve(args.host, args.port, ready=ready)
    return 0


def _iam_policy(args: argparse.Namespace) -> int:
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:  # a missing argument, as argparse reports one: exit 2
        print("error: --region (or $AWS_REGION) is required", file=sys.stderr)
        return 2
    document = iam.policy(
        region=region, account=args.account, table_prefix=_table_prefix(args) or "",
        layout=_layout(args),
    )  # fmt: skip
    print(json.dumps(document, indent=2))
    return 0


# Output -----------------------------------------------------------------------


def _counted(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and the noun, singular for 1: "1 account", "2 accounts"."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


#: What may not reach a line of text as it is: control characters, line and paragraph
#: separators, lone surrogates (in ids and keys other clients wrote).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _shown(text: str | None) -> str:
    """An id or key for a line of text, its unsafe characters escaped (``\\u000a``): an
    entry is one line, whatever another client stored."""
    return _UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text or "")


def _emit(args: argparse.Namespace, result: Any, line: str) -> None:
    if args.json:
        print(json.dumps(as_dict(result), ensure_ascii=False))
    else:
        print(line)


# Commands ---------------------------------------------------------------------


def _migrate(args: argparse.Namespace, ledger: Ledger) -> int:
    if args.check:
        return _migrate_check(ledger)
    if args.release is not None:
        freed = ledger.release_migration(args.release)
        since = f" since {freed.claimed_at:%Y-%m-%d %H:%M:%S}Z" if freed.claimed_at else ""
        print(f"released {freed.revision} (claimed by {freed.claimed_by}{since}); "
              "`dynaledger migrate` applies it again")  # fmt: skip
        return 0
    if args.status:
        for status in ledger.migration_status():
            print(f"{status.revision}  {_revision_state(status):<28} {status.description}")
        for table in ledger.table_settings():
            pitr = "on" if table.point_in_time_recovery else "off"
            protected = "on" if table.deletion_protection else "off"
            print(f"table {table.table}: point-in-time recovery {pitr}, "
                  f"deletion protection {protected}")  # fmt: skip
        stored = ledger.deployment_settings()
        print(f"settings: {_settings_line(stored)}" if stored else "settings: none recorded")
        return 0
    applied = ledger.migrate(
        point_in_time_recovery=args.pitr, deletion_protection=args.deletion_protection
    )
    if applied:
        print(f"applied {', '.join(applied)}")
    else:
        print("nothing to apply: up to date")
    return 0


def _revision_state(status: values.RevisionStatus) -> str:
    if status.applied_at is not None:
        return f"applied {status.applied_at:%Y-%m-%d %H:%M:%S}Z"
    if status.claimed_by is not None:
        since = f" since {status.claimed_at:%Y-%m-%d %H:%M:%S}Z" if status.claimed_at else ""
        return (
            f"being applied by {status.claimed_by}{since} "
            f"(if it is gone: migrate --release {status.revision})"
        )
    return "pending"


def _settings_line(settings: values.DeploymentSettings) -> str:
    assets = ",".join(f"{code}:{places}" for code, places in settings.assets.items())
    return (
        f"opening balance {settings.opening_balance:f}, default currency "
        f"{settings.default_currency}, assets {assets or 'none'}"
    )


def _settings(args: argparse.Namespace, ledger: Ledger) -> int:
    if args.apply:
        applied = ledger.apply_settings()
        _emit(args, applied, f"applied: {_settings_line(applied)}")
        return 0
    stored = ledger.deployment_settings()
    if args.json:
        _emit(args, {"stored": stored}, "")
    else:
        print(f"stored: {_settings_line(stored) if stored else 'none (run migrate)'}")
    return 0


def _migrate_check(ledger: Ledger) -> int:
    check = ledger.check_schema()
    for revision in check.pending:
        print(f"pending revision {revision}")
    for problem in check.problems:
        print(f"not ready: {problem}")
    if check.ok:
        print("up to date")
        return 0
    return 1


def _ping(args: argparse.Namespace, ledger: Ledger) -> int:
    readiness = ledger.ping()
    _emit(args, readiness, f"ok: {', '.join(readiness.tables)} answered")
    return 0


def _seed(args: argparse.Namespace, ledger: Ledger) -> int:
    if args.generate is not None:
        report = ledger.generate_users(args.generate, progress=_progress_bar)
    else:
        report = ledger.seed()
    print(f"created {report.created}, skipped {report.skipped} existing")
    return 0


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    end = "\n" if done >= total else ""
    print(
        f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
        end=end,
        file=sys.stderr,
        flush=True,
    )


def _create_user(args: argparse.Namespace, ledger: Ledger) -> int:
    user = ledger.create_user(
        args.user, currency=args.currency, balance=args.balance, credit_limit=args.credit_limit
    )
    shown = "the opening balance" if user.balance is None else f"{user.balance:f} {user.currency}"
    limit = f", credit limit {user.credit_limit:f} {user.currency}" if user.credit_limit else ""
    _emit(args, user, f"created {user.user_id} ({user.currency}) with {shown}{limit}")
    return 0


def _set_credit_limit(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.set_credit_limit(idempotency_key=args.key, user_id=args.user, limit=args.limit)
    _emit(
        args,
        result,
        f"credit limit of {result.user_id} set to {result.credit_limit:f} {result.currency}"
        f"{_replayed(result.replayed)}",
    )
    return 0


def _balance(args: argparse.Namespace, ledger: Ledger) -> int:
    balance = ledger.get_user_balance(args.user)
    note = " (opening balance)" if balance.is_opening else ""
    if balance.held:
        note += f" ({balance.held:f} {balance.currency} held)"
    if balance.credit_limit:
        note += f" (credit limit {balance.credit_limit:f} {balance.currency})"
    _emit(args, balance, f"{balance.user_id}: {balance.amount:f} {balance.currency}{note}")
    return 0


def _metadata(args: argparse.Namespace) -> dict[str, str] | None:
    """``--meta KEY=VALUE`` options as a mapping (None when there are none)."""
    if not args.meta:
        return None
    found = {}
    for item in args.meta:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError("--meta", f"{item!r} is not KEY=VALUE")
        if key in found:
            raise ValidationError("--meta", f"{key!r} is given twice")
        found[key] = value
    return found


def _replayed(replayed: bool) -> str:
    """The note that tells a replay from a first application."""
    return " (replayed: already applied)" if replayed else ""


def _transact(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.transact(
        idempotency_key=args.key, user_id=args.user, amount=args.amount, type=args.type,
        currency=args.currency, metadata=_metadata(args),
    )  # fmt: skip
    _emit(
        args,
        result,
        f"{result.type} {result.amount:f} {result.currency} "
        f"{'to' if result.type == 'credit' else 'from'} {result.user_id}"
        f"{_replayed(result.replayed)}",
    )
    return 0


def _transfer(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.transfer(
        idempotency_key=args.key, from_user_id=args.from_user, to_user_id=args.to_user,
        amount=args.amount, currency=args.currency, metadata=_metadata(args),
    )  # fmt: skip
    _emit(
        args,
        result,
        f"transferred {result.amount:f} {result.currency} from "
        f"{result.from_user_id} to {result.to_user_id}{_replayed(result.replayed)}",
    )
    return 0


def _history(args: argparse.Namespace, ledger: Ledger) -> int:
    page = ledger.history(args.user, limit=args.limit, cursor=args.cursor)
    if args.json:
        _emit(args, page, "")
        return 0
    for item in page.items:
        other = (
            f"  ({'from' if item.type == 'credit' else 'to'} {_shown(item.counterparty_id)})"
            if (item.counterparty_id)
            else ""
        )
        sign = "+" if item.type == "credit" else "-"
        if item.kind == "limit":  # a change of credit limit, not money
            other, sign = "  (credit limit set)", "="
        print(
            f"{item.timestamp:%Y-%m-%d %H:%M:%S}  {sign}{item.amount:>14f} {item.currency}  "
            f"{_shown(item.idempotency_key)}{other}"
        )
    if not page.items:
        print("no entries")
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")
    return 0


def _print_problems(problems: Sequence[values.RecordProblem]) -> None:
    """One line per item that could not be read right."""
    for problem in problems:
        print(
            f"UNREADABLE {_shown(problem.user_id)}: item {problem.key!r} of {problem.table}: "
            f"{problem.problem}"
        )


def _reconcile(args: argparse.Namespace, ledger: Ledger) -> int:
    report = ledger.reconcile(args.users or None)
    if args.json:
        _emit(args, report, "")
    else:
        for mismatch in report.mismatches:
            print(
                f"MISMATCH {_shown(mismatch.user_id)}: history says {mismatch.expected:f}, "
                f"balance is {mismatch.actual:f}"
            )
        _print_problems(report.problems)
        verdict = (
            "OK"
            if report.ok
            else f"{_counted(len(report.mismatches), 'mismatch', 'mismatches')}, "
            f"{_counted(len(report.problems), 'unreadable item')}"
        )
        print(f"reconciled {_counted(report.checked, 'account')}: {verdict}")
    return 0 if report.ok else 1


# Holds ------------------------------------------------------------------------


def _seconds(text: str | None) -> float | None:
    """A --timeout in seconds; anything but a number is refused as the ledger would."""
    if text is None:
        return None
    if not DECIMAL_NUMBER.fullmatch(text):
        raise ValidationError("timeout", f"must be a number of seconds, not {text!r}")
    return int(text) if WHOLE_NUMBER.fullmatch(text) else float(text)


def _whole(text: str) -> int:
    """An option that takes a whole number (``--limit``, ``--port``, ``--generate``)."""
    if not WHOLE_NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a whole number in ASCII digits, not {text!r}")
    return int(text)


def _hold(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.hold(
        idempotency_key=args.key, user_id=args.user, amount=args.amount, currency=args.currency,
        to_user_id=args.to_user, timeout=_seconds(args.timeout), metadata=_metadata(args),
    )  # fmt: skip
    payee = f" for {result.to_user_id}" if result.to_user_id else ""
    until = f" until {result.expires_at.isoformat()}" if result.expires_at else ""
    _emit(args, result, f"held {result.amount:f} {result.currency} of {result.user_id}{payee}"
                        f"{until}{_replayed(result.replayed)}")  # fmt: skip
    return 0


def _capture(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.capture(
        idempotency_key=args.key, hold_id=args.hold, amount=args.amount,
        final=not args.not_final, metadata=_metadata(args),
    )  # fmt: skip
    _emit(args, result, f"captured {result.amount:f} {result.currency} of hold {result.hold_id}, "
                        f"released {result.released:f}, {result.remaining:f} remaining"
                        f"{_replayed(result.replayed)}")  # fmt: skip
    return 0


def _void(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.void(idempotency_key=args.key, hold_id=args.hold, metadata=_metadata(args))
    line = (
        f"voided hold {result.hold_id}: released {result.released:f} {result.currency} "
        f"to {result.user_id}{_replayed(result.replayed)}"
    )
    _emit(args, result, line)
    return 0


def _holds(args: argparse.Namespace, ledger: Ledger) -> int:
    found = ledger.holds(args.user)
    if args.json:
        _emit(args, found, "")
        return 0
    for hold in found:
        payee = f" for {_shown(hold.to_user_id)}" if hold.to_user_id else ""
        until = hold.expires_at.isoformat() if hold.expires_at else "no expiry"
        left = f"{hold.remaining:f} of {hold.amount:f} {hold.currency}"
        print(f"{_shown(hold.hold_id)}  {left}{payee}  ({until})")
    if not found:
        print("no active holds")
    return 0


def _expire_holds(args: argparse.Namespace, ledger: Ledger) -> int:
    report = ledger.expire_holds(args.users or None)
    released = _counted(report.released, "expired hold")
    if not args.json:
        _print_problems(report.problems)
    skipped = f", {_counted(len(report.problems), 'unreadable account')}" if report.problems else ""
    _emit(args, report, f"released {released} of {_counted(report.accounts, 'account')} "
                        f"({report.checked} checked{skipped})")  # fmt: skip
    return 1 if report.problems else 0


def _accounts_parsers(command: Callable[..., argparse.ArgumentParser],
                      output: argparse.ArgumentParser) -> None:  # fmt: skip
    create = command("create-user", _create_user, "create one account", output)
    create.add_argument("user")
    create.add_argument("--currency")
    create.add_argument("--balance")
    create.add_argument(
        "--credit-limit", default="0", help="how far below zero the account may go (default 0)"
    )
    limit = command(
        "set-credit-limit", _set_credit_limit, "set how far below zero an account may go", output
    )
    limit.add_argument("--key", required=True, help="idempotency key")
    limit.add_argument("--user", required=True)
    limit.add_argument("--limit", required=True)
    balance = command("balance", _balance, "show a balance", output)
    balance.add_argument("user")


def _holds_parsers(
    command: Callable[..., argparse.ArgumentParser],
    output: argparse.ArgumentParser,
    meta: argparse.ArgumentParser,
) -> None:
    hold = command("hold", _hold, "reserve money of an account once per key", output, meta)
    hold.add_argument("--key", required=True, help="idempotency key: the hold's id")
    hold.add_argument("--user", required=True)
    hold.add_argument("--amount", required=True)
    hold.add_argument("--to", dest="to_user", help="payee: captures credit this account")
    hold.add_argument("--timeout", help="seconds until it expires (default: never)")
    hold.add_argument("--currency")

    capture = command(
        "capture", _capture, "capture a hold (all of it unless --amount)", output, meta
    )
    capture.add_argument("--key", required=True, help="idempotency key of the capture")
    capture.add_argument("--hold", required=True, help="the hold's id")
    capture.add_argument("--amount")
    capture.add_argument("--not-final", action="store_true",
                         help="keep the rest reserved for later captures")  # fmt: skip

    void = command("void", _void, "release what remains of a hold", output, meta)
    void.add_argument("--key", required=True, help="idempotency key of the void")
    void.add_argument("--hold", required=True, help="the hold's id")

    holds = command("holds", _holds, "list an account's active holds", output)
    holds.add_argument("user")

    expire = command("expire-holds", _expire_holds, "release expired holds into history", output)
    expire.add_argument("users", nargs="*", metavar="USER",
                        help="only these accounts (default: a Scan of all)")  # fmt: skip


def _refund(args: argparse.Namespace, ledger: Ledger) -> int:
    result = ledger.refund(
        idempotency_key=args.key, of=args.of, amount=args.amount, currency=args.currency,
        metadata=_metadata(args),
    )  # fmt: skip
    _emit(args, result, f"refunded {result.amount:f} {result.currency} of {result.kind} "
                        f"{result.of}{_replayed(result.replayed)}")  # fmt: skip
    return 0


def _leg(text: str, index: int) -> values.Leg:
    """``USER:AMOUNT:TYPE`` (the user id may itself hold colons)."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:  # user, amount, type
        raise ValidationError(f"--leg {index + 1}", f"must be USER:AMOUNT:TYPE, not {text!r}")
    try:
        return values.Leg(*parts)
    except ValidationError as error:  # its type: say which leg
        raise ValidationError(f"--leg {index + 1} {error.field}", error.rule) from None


def _post(args: argparse.Namespace, ledger: Ledger) -> int:
    legs = [_leg(text, index) for index, text in enumerate(args.legs)]
    result = ledger.post(idempotency_key=args.key, legs=legs, currency=args.currency,
                         metadata=_metadata(args))  # fmt: skip
    parts = ", ".join(
        f"{'+' if leg.type == 'credit' else '-'}{leg.amount:f} {leg.user_id}" for leg in result.legs
    )
    _emit(args, result, f"posted {result.amount:f} {result.currency}: {parts}"
                        f"{_replayed(result.replayed)}")  # fmt: skip
    return 0


def _refunds_parsers(command: Callable[..., argparse.ArgumentParser],
                     output: argparse.ArgumentParser, meta: argparse.ArgumentParser,
                     ) -> None:  # fmt: skip
    refund = command("refund", _refund, "give back all (or --amount) of a movement", output, meta)
    refund.add_argument("--key", required=True, help="idempotency key of the refund")
    refund.add_argument("--of", required=True, help="the original movement's idempotency key")
    refund.add_argument("--amount", help="the part to give back (default: all that is left)")
    refund.add_argument("--currency", help="must be the original's, when given")

    post = command("post", _post, "apply balanced legs on several accounts together", output,
                   meta)  # fmt: skip
    post.add_argument("--key", required=True, help="idempotency key of the posting")
    post.add_argument(
        "--leg",
        dest="legs",
        action="append",
        required=True,
        metavar="USER:AMOUNT:TYPE",
        help="one leg (repeat); TYPE credit or debit",
    )
    post.add_argument("--currency")


# Parser -----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # The connection options work before or after the command.
    connection = argparse.ArgumentParser(add_help=False)
    _connection_options(connection, argparse.SUPPRESS)
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", help="print JSON for machines")
    meta = argparse.ArgumentParser(add_help=False)
    meta.add_argument(
        "--meta",
        action="append",
        metavar="KEY=VALUE",
        help="metadata stored with the movement (repeatable; part of what the key stands for)",
    )

    parser = argparse.ArgumentParser(
        prog="dynaledger", description=__doc__.splitlines()[0] if __doc__ else None,
    )  # fmt: skip
    _connection_options(parser, None)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(
        name: str, handler: Handler | None, help_text: str, *parents: argparse.ArgumentParser
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name, help=help_text, description=help_text, parents=[connection, *parents]
        )
        sub.set_defaults(handler=handler)
        return sub

    serve = command("serve", None, "run the embedded in-memory DynamoDB endpoint")
    serve.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    serve.add_argument("--port", type=_whole, default=8000, help="port (default: %(default)s)")

    _migrate_options(command("migrate", _migrate, "create or adopt the tables; record revisions"))

    settings = command(
        "settings", _settings, "show the deployment's opening balance, currency and assets", output
    )
    settings.add_argument(
        "--apply",
        action="store_true",
        help="make this ledger's settings (--assets, ...) the deployment's, "
        "unless accounts depend on what they change",
    )
    command("ping", _ping, "check that the tables exist and answer (one read each)", output)

    seed = command("seed", _seed, "create the test users (existing ones are skipped)")
    seed.add_argument(
        "--generate", type=_whole, metavar="N", help="write N synthetic users instead"
    )

    _accounts_parsers(command, output)

    transact = command(
        "transact", _transact, "credit or debit an account once per key", output, meta
    )
    transact.add_argument("--key", required=True, help="idempotency key")
    transact.add_argument("--user", required=True)
    transact.add_argument("--amount", required=True)
    transact.add_argument("--type", required=True, help="credit or debit")
    transact.add_argument("--currency")

    transfer = command(
        "transfer", _transfer, "move money between accounts once per key", output, meta
    )
    transfer.add_argument("--key", required=True, help="idempotency key")
    transfer.add_argument("--from", dest="from_user", required=True)
    transfer.add_argument("--to", dest="to_user", required=True)
    transfer.add_argument("--amount", required=True)
    transfer.add_argument("--currency")

    history = command("history", _history, "list an account's movements, newest first", output)
    history.add_argument("user")
    history.add_argument("--limit", type=_whole, default=50)
    history.add_argument("--cursor")

    reconcile = command("reconcile", _reconcile, "check balances against history", output)
    reconcile.add_argument("users", nargs="*", metavar="USER")

    _holds_parsers(command, output, meta)
    _refunds_parsers(command, output, meta)

    command("demo", None, "walk through the ledger on the embedded endpoint")

    policy = command("iam-policy", None, "print a least-privilege IAM policy for the tables")
    policy.add_argument("--account", required=True, help="the AWS account id")
    return parser


def _migrate_options(migrate: argparse.ArgumentParser) -> None:
    action = migrate.add_mutually_exclusive_group()
    action.add_argument("--status", action="store_true", help="list applied and pending revisions")
    action.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 1 while revisions are pending or a table is incompatible",
    )
    action.add_argument(
        "--release",
        metavar="REVISION",
        help="free the claim a migrator that died left on REVISION, so migrate applies it again",
    )
    migrate.add_argument(
        "--pitr",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn on point-in-time recovery (default: on for AWS only)",
    )
    migrate.add_argument(
        "--deletion-protection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn on deletion protection (default: on for AWS only)",
    )


def _connection_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    # Separate actions per parser: argparse shares a parent's actions, defaults included.
    env_endpoint = "$AWS_ENDPOINT_URL_DYNAMODB, $AWS_ENDPOINT_URL, else AWS"
    parser.add_argument(
        "--endpoint", default=default, help=f"DynamoDB endpoint URL (default: {env_endpoint})"
    )
    parser.add_argument(
        "--region", default=default, help="AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION)"
    )
    parser.add_argument(
        "--table-prefix",
        default=default,
        help="table name prefix (default: $DYNALEDGER_TABLE_PREFIX)",
    )
    parser.add_argument(
        "--assets",
        default=default,
        help="assets beyond ISO 4217 with their decimals, e.g. BTC:8,ETH:18 "
        "(default: $DYNALEDGER_ASSETS)",
    )
    for field, variable in LAYOUT_VARIABLES.items():
        what = "the records' key attribute" if field.endswith("attribute") else "table name"
        parser.add_argument(
            "--" + field.replace("_", "-"),
            default=default,
            help=f"{what}, to share another service's tables (default: ${variable})",
        )


def console() -> None:  # pragma: no cover - the console script
    """Entry point of the ``dynaledger`` script."""
    sys.exit(main())
