"""The embedded endpoint: a real HTTP server on loopback that keeps every acknowledged write."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from urllib.parse import urlparse

import pytest

from dynaledger import Ledger
from dynaledger.cli import main
from dynaledger.local import embedded_dynamodb
from tests.conftest import FAST_RETRY


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        return sock.connect_ex((parsed.hostname or "", parsed.port or 0)) == 0


class TestEmbeddedEndpoint:
    def test_serves_dynamodb_on_loopback_and_stops_with_the_block(self) -> None:
        """Inside the block the endpoint answers DynamoDB calls; after it, the port is closed."""
        with embedded_dynamodb() as url:
            assert "127.0.0.1" == urlparse(url).hostname
            ledger = Ledger(url, table_prefix="local-start-")
            assert ["0001", "0002"] == ledger.migrate()
            assert _port_open(url)
        assert not _port_open(url)

    def test_a_client_stalled_mid_request_holds_no_one_else_up(self) -> None:
        """One connection sends a request's headers announcing a body, and no body. Another
        client is answered meanwhile (the body is read before the one-at-a-time lock; it
        was read under it, so every client waited for the stalled one)."""
        with embedded_dynamodb() as url:
            ledger = Ledger(url, table_prefix="local-stall-", retry=FAST_RETRY, deadline=10)
            ledger.migrate()
            ledger.create_user("waiting", balance="5")
            address = urlparse(url)
            with socket.create_connection((address.hostname, address.port)) as stalled:
                stalled.sendall(
                    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                    b"X-Amz-Target: DynamoDB_20120810.ListTables\r\n\r\n"
                )
                assert Decimal("5.00") == ledger.get_user_balance("waiting").amount

    def test_concurrent_transactions_are_all_kept(self) -> None:
        """16 threads x 30 credits on one account: every acknowledged credit is in the balance.

        moto's stock threaded server loses some of these; the embedded endpoint
        serializes requests so none is lost.
        """
        threads, per_thread = 16, 30
        with embedded_dynamodb() as url:
            ledger = Ledger(url, table_prefix="local-race-", retry=FAST_RETRY)
            ledger.migrate()
            ledger.create_user("hot", balance="0")

            def credit(worker: int) -> int:
                for n in range(per_thread):
                    ledger.transact(idempotency_key=f"w{worker}-{n}", user_id="hot",
                                    amount="1", type="credit")  # fmt: skip
                return per_thread

            with ThreadPoolExecutor(threads) as pool:
                acknowledged = sum(pool.map(credit, range(threads)))
            assert Decimal(acknowledged) == ledger.get_user_balance("hot").amount
            assert ledger.reconcile(["hot"]).ok

    def test_does_not_keep_a_copy_of_the_tables_per_transaction(self) -> None:
        """Regression: moto tracks every model object it makes; the endpoint lets them go.

        Without this, memory grew by about a megabyte per transaction once the
        Transactions table held a few hundred items.
        """
        from moto.core.model_instances import model_data

        with embedded_dynamodb() as url:
            ledger = Ledger(url, table_prefix="local-leak-")
            ledger.migrate()
            ledger.create_user("leak", balance="0")
            for n in range(20):
                ledger.transact(idempotency_key=f"leak-{n}", user_id="leak", amount="1",
                                type="credit")  # fmt: skip
            tracked = sum(
                len(model.instances_tracked)  # type: ignore[attr-defined]
                for models in model_data.values()
                for model in models.values()
            )
        assert 0 == tracked


def _post(
    url: str, host: str | None = None, origin: str | None = None
) -> tuple[int, dict[str, str], str]:
    """A raw ListTables request with a chosen Host and Origin; (status, headers, body)."""
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=10)
    try:
        connection.putrequest("POST", "/", skip_host=host is not None)
        headers = {
            "Host": host,
            "Origin": origin,
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": "DynamoDB_20120810.ListTables",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/"
            "aws4_request, SignedHeaders=host, Signature=0",
            "Content-Length": "2",
        }
        for name, value in headers.items():
            if value is not None:
                connection.putheader(name, value)
        connection.endheaders(b"{}")
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


class TestEmbeddedEndpointAtTheDoor:
    """What the endpoint accepts from clients other than the AWS SDKs' defaults."""

    def test_any_region_name_is_accepted_with_tables_of_its_own(self) -> None:
        """Regression: region ``local`` (TypeScript clients) got an HTTP 500 and 30 s of retries.

        Like DynamoDB Local, any region name works, and each region has its own tables.
        """
        with embedded_dynamodb() as url:
            local = Ledger(url, region="local", table_prefix="region-", retry=FAST_RETRY)
            assert ["0001", "0002"] == local.migrate()
            local.create_user("alice", balance="5")
            assert Decimal("5") == local.get_user_balance("alice").amount
            elsewhere = Ledger(url, region="eu-west-3", table_prefix="region-")
            assert ["0001", "0002"] == elsewhere.migrate()

    def test_no_cors_headers_for_any_origin(self) -> None:
        """moto's server echoes any Origin back (flask-cors); the embedded endpoint sends none."""
        with embedded_dynamodb() as url:
            status, headers, body = _post(url, origin="http://evil.example")
        assert (200, True) == (status, "TableNames" in json.loads(body))
        assert [] == [name for name in headers if name.lower().startswith("access-control-")]

    @pytest.mark.parametrize(
        "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "127.1.2.3", "[::1]:8000"]
    )
    def test_loopback_host_names_are_served(self, host: str) -> None:
        """A Host header naming loopback (localhost, 127.x.x.x, [::1]) is served."""
        with embedded_dynamodb() as url:
            status, _, _ = _post(url, host=host)
        assert 200 == status

    @pytest.mark.parametrize(
        "host", ["evil.example", "evil.example:8000", "10.0.0.5:8000", "localhost.evil.example", ""]
    )
    def test_other_host_names_are_refused_on_loopback(self, host: str) -> None:
        """On loopback, a request naming any other host (DNS rebinding) gets a 403 and a reason."""
        with embedded_dynamodb() as url:
            status, _, body = _post(url, host=host)
        assert 403 == status
        assert "HostNotAllowed" == json.loads(body)["__type"].rpartition("#")[2]
        assert "not a loopback name" in json.loads(body)["message"]


class TestServeCommand:
    def test_serve_runs_in_the_foreground_until_interrupted(self) -> None:
        """``dynaledger serve --port 0`` prints its URL, answers requests and exits 0 on Ctrl-C,
        also when started with SIGINT ignored (as a background job is)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "dynaledger", "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # noqa: PLW1509 - the point of the test
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            url = line.split(" on ")[1].split(";")[0]
            ledger = Ledger(url, table_prefix="serve-")
            assert ["0001", "0002"] == ledger.migrate()
            process.send_signal(signal.SIGINT)
            assert 0 == process.wait(timeout=30)
        finally:
            process.kill()  # never leave a server behind, whatever failed
            process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def test_an_address_that_cannot_be_served_is_one_error_line(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A port out of range, and a port in use, end with one ``error:`` line and exit 1
        (werkzeug printed its own lines, or listened on another port)."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            used = taken.getsockname()[1]
            codes = [main(["serve", "--port", port]) for port in ("65536", "-1", str(used))]
        assert ([1, 1, 1], [
            "error: port: must be an int from 0 to 65535, not 65536",
            "error: port: must be an int from 0 to 65535, not -1",
            f"error: cannot listen on 127.0.0.1:{used}: Address already in use",
        ]) == (codes, capsys.readouterr().err.splitlines())  # fmt: skip


class TestConfiguration:
    def test_from_env_reads_the_standard_variables(self) -> None:
        """The DynamoDB-specific endpoint wins over the general one; AWS_REGION over the default."""
        ledger = Ledger.from_env(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:4566",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9999",
                "AWS_REGION": "eu-west-1",
                "AWS_DEFAULT_REGION": "us-west-2",
                "DYNALEDGER_TABLE_PREFIX": "staging-",
            }
        )
        assert ("http://127.0.0.1:4566", "eu-west-1", "staging-") == (
            ledger.settings.endpoint_url,
            ledger.settings.region,
            ledger.settings.table_prefix,
        )
        assert ("staging-Users", "staging-Transactions", "staging-SchemaMigrations") == (
            ledger.table_names
        )

    def test_from_env_falls_back_to_the_general_variables(self) -> None:
        """Without the specific variables, AWS_ENDPOINT_URL and AWS_DEFAULT_REGION apply."""
        ledger = Ledger.from_env(
            {"AWS_ENDPOINT_URL": "http://localhost:8000", "AWS_DEFAULT_REGION": "us-west-2"}
        )
        assert ("http://localhost:8000", "us-west-2", "") == (
            ledger.settings.endpoint_url,
            ledger.settings.region,
            ledger.settings.table_prefix,
        )

    @pytest.mark.parametrize(
        "endpoint", ["http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000"]
    )
    def test_placeholder_credentials_only_for_loopback_without_credentials(
        self, endpoint: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A local endpoint with no credentials set gets placeholders (local servers accept any)."""
        monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        assert ("dynaledger-local", "dynaledger-local") == Ledger(endpoint).settings.credentials

    @pytest.mark.parametrize(
        "endpoint", [None, "https://dynamodb.eu-west-1.amazonaws.com", "http://10.0.0.5:8000"]
    )
    def test_never_placeholder_credentials_toward_aws(
        self, endpoint: str | None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """AWS and any non-loopback endpoint use botocore's credential chain untouched."""
        monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        assert Ledger(endpoint, region="eu-west-1").settings.credentials is None

    def test_configured_credentials_are_kept_for_loopback(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When credentials are set, even a local endpoint gets them, not placeholders."""
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
        assert Ledger("http://127.0.0.1:8000").settings.credentials is None

    def test_opening_balance_and_currency_are_validated(self) -> None:
        """A bad default currency or opening balance is refused at construction."""
        from dynaledger.errors import ValidationError

        with pytest.raises(ValidationError, match="default_currency"):
            Ledger("http://127.0.0.1:1", default_currency="usd")
        with pytest.raises(ValidationError, match="opening_balance"):
            Ledger("http://127.0.0.1:1", opening_balance="-1")
