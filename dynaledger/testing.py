"""Real DynamoDB servers for test suites: never a mock.

The choice, in order: an endpoint named by ``DYNALEDGER_TEST_ENDPOINT``;
DynamoDB Local started through testcontainers when a Docker engine answers
(image ``amazon/dynamodb-local``, overridable by ``DYNALEDGER_TEST_IMAGE``);
otherwise the embedded endpoint of :mod:`dynaledger.local`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

ENDPOINT_VARIABLE = "DYNALEDGER_TEST_ENDPOINT"
IMAGE_VARIABLE = "DYNALEDGER_TEST_IMAGE"
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
        """One line for the pytest header."""
        if self.kind == "endpoint":
            return f"DynamoDB server: {self.detail} (from ${ENDPOINT_VARIABLE})"
        if self.kind == "testcontainers":
            return f"DynamoDB server: testcontainers, image {self.detail}"
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


def choose_server() -> ServerChoice:
    """Decide which server to start, without starting it."""
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    if endpoint:
        return ServerChoice("endpoint", endpoint)
    if docker_available():
        return ServerChoice("testcontainers", os.environ.get(IMAGE_VARIABLE, DYNAMODB_LOCAL_IMAGE))
    return ServerChoice("embedded", "")


@contextmanager
def dynamodb_server(choice: ServerChoice | None = None) -> Iterator[str]:
    """Start (or name) the chosen server; yield its endpoint URL; stop it afterwards."""
    choice = choice or choose_server()
    if choice.kind == "endpoint":
        yield choice.detail
    elif choice.kind == "testcontainers":
        with _dynamodb_local(choice.detail) as url:
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
