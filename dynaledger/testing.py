"""Real DynamoDB servers for test suites: never a mock.

The choice, in order: an endpoint named by ``DYNALEDGER_TEST_ENDPOINT``;
a container started through testcontainers when a Docker engine answers;
otherwise the embedded endpoint of :mod:`dynaledger.local`.

The container is DynamoDB Local (``amazon/dynamodb-local``, bridge
networking, an exposed port) unless ``DYNALEDGER_TEST_IMAGE`` names another
image: that one runs this package's own embedded endpoint from read-only bind
mounts of this machine's Python and environment, on the host's network, bound
to 127.0.0.1 (``scripts/docker-lane`` builds such an image without any
registry). ``DYNALEDGER_REQUIRE_TESTCONTAINERS=1`` makes a missing engine an
error instead of a quiet fall-back.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

ENDPOINT_VARIABLE = "DYNALEDGER_TEST_ENDPOINT"
IMAGE_VARIABLE = "DYNALEDGER_TEST_IMAGE"
REQUIRE_VARIABLE = "DYNALEDGER_REQUIRE_TESTCONTAINERS"
DYNAMODB_LOCAL_IMAGE = "amazon/dynamodb-local:2.5.4"
DYNAMODB_LOCAL_PORT = 8000
DYNAMODB_LOCAL_READY = "Initializing DynamoDB Local"


@attrs.frozen
class ServerChoice:
    """Which DynamoDB server a test session uses.

    Attributes:
        kind: ``endpoint``, ``testcontainers`` or ``embedded``.
        detail: The endpoint URL or the image name.
    """

    kind: str
    detail: str

    def describe(self) -> str:
        """One line for the test run, printed when the choice is made."""
        if self.kind == "endpoint":
            return f"DynamoDB server: {self.detail} (from ${ENDPOINT_VARIABLE})"
        if self.kind == "testcontainers":
            what = "DynamoDB Local" if is_dynamodb_local(self.detail) else "embedded endpoint"
            return f"DynamoDB server: testcontainers, image {self.detail} ({what})"
        return "DynamoDB server: embedded endpoint (moto, in memory, serialized)"


def docker_available() -> bool:
    """True when a Docker engine answers a ping within two seconds."""
    if not os.environ.get("DOCKER_HOST") and not os.path.exists("/var/run/docker.sock"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def is_dynamodb_local(image: str) -> bool:
    """True for Amazon's DynamoDB Local image; anything else runs the embedded endpoint."""
    return "dynamodb-local" in image.rpartition("/")[2]


def installed(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose_server() -> ServerChoice:
    """Decide which server to start, without starting it.

    Raises:
        RuntimeError: No server can run: ``DYNALEDGER_REQUIRE_TESTCONTAINERS`` is
            set and testcontainers or a Docker engine is missing, or neither
            testcontainers with Docker nor the embedded endpoint (moto) is available.
    """
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if endpoint:
        return ServerChoice("endpoint", endpoint)
    has_testcontainers = installed("testcontainers")
    if has_testcontainers and docker_available():
        return ServerChoice("testcontainers", os.environ.get(IMAGE_VARIABLE, DYNAMODB_LOCAL_IMAGE))
    if os.environ.get(REQUIRE_VARIABLE, "") not in {"", "0"}:
        missing = "no Docker engine answers" if has_testcontainers else "testcontainers is missing"
        raise RuntimeError(f"{REQUIRE_VARIABLE} is set, but {missing}")
    if not installed("moto"):
        raise RuntimeError(
            f"no DynamoDB server for the tests: set {ENDPOINT_VARIABLE} to one, install "
            "dynaledger[test] with a Docker engine running, or install dynaledger[local] "
            "for the embedded endpoint"
        )
    return ServerChoice("embedded", "")


@contextmanager
def dynamodb_server(choice: ServerChoice | None = None) -> Iterator[str]:
    """Start (or name) the chosen server; yield its endpoint URL; stop it afterwards."""
    choice = choice or choose_server()
    if choice.kind == "endpoint":
        yield choice.detail
    elif choice.kind == "testcontainers" and is_dynamodb_local(choice.detail):
        with _dynamodb_local(choice.detail) as url:
            yield url
    elif choice.kind == "testcontainers":
        with _embedded_container(choice.detail) as url:
            yield url
    else:
        from dynaledger.local import embedded_dynamodb

        with embedded_dynamodb() as url:
            yield url


@contextmanager
def _dynamodb_local(image: str) -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    container = (
        DockerContainer(image)
        .with_exposed_ports(DYNAMODB_LOCAL_PORT)
        .with_command("-jar DynamoDBLocal.jar -inMemory -sharedDb")
        .waiting_for(LogMessageWaitStrategy(DYNAMODB_LOCAL_READY))
    )
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(DYNAMODB_LOCAL_PORT)
        yield f"http://{host}:{port}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mounts_for_python() -> list[tuple[str, str]]:
    """``(host path, container path)`` pairs a container with no files of its own needs
    to run this interpreter and package: the system libraries, Python, the environment."""
    package_root = Path(__file__).resolve().parent.parent
    wanted = ["/lib", "/lib64", "/usr", sys.base_prefix, sys.prefix, str(package_root)]
    mounts: list[tuple[str, str]] = []
    for target in sorted({os.path.abspath(p) for p in wanted if os.path.exists(p)}):
        if not any(target.startswith(parent + os.sep) for _, parent in mounts):
            # /lib may be a link into /usr: mount what it points to, where it is expected.
            mounts.append((os.path.realpath(target), target))
    return mounts


@contextmanager
def _embedded_container(image: str) -> Iterator[str]:
    """The embedded endpoint inside a container: host network, 127.0.0.1 only."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = _free_port()
    command = [sys.executable, "-m", "dynaledger", "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    container = (
        DockerContainer(image)
        .with_command(command)
        .with_env("PYTHONUNBUFFERED", "1")
        .with_kwargs(network_mode="host")
        .waiting_for(LogMessageWaitStrategy("listening on"))
    )
    for source, target in _mounts_for_python():
        container = container.with_volume_mapping(source, target, "ro")
    with container:
        yield f"http://127.0.0.1:{port}"
