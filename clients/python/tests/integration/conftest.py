"""The real gateway for the integration tests: ``TICKGATE_BIN`` names the binary (``.ci/run``
sets it to the one ``cargo test`` built). Without it these tests are skipped, saying so; with
``TICKGATE_REQUIRE_GATEWAY=1`` (set by ``.ci/python-sdk.sh``) a missing binary fails instead,
so CI can never pass by skipping them."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BIN = os.environ.get("TICKGATE_BIN")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BIN:
        return
    if os.environ.get("TICKGATE_REQUIRE_GATEWAY") == "1":
        raise pytest.UsageError("TICKGATE_REQUIRE_GATEWAY=1 but TICKGATE_BIN is not set")
    skip = pytest.mark.skip(
        reason="SKIPPED: set TICKGATE_BIN to a tickgate binary to run the "
        "integration tests against a real gateway"
    )
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Key:
    id: str
    secret: str | None = None
    pem: bytes | None = None


@dataclass
class Gateway:
    data_dir: Path
    port: int
    sim_rate: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert BIN
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process
        self.proc = subprocess.Popen(
            [
                BIN,
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
                "--sim-rate",
                str(self.sim_rate),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("the gateway exited:\n" + self.log())
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError("the gateway did not become ready:\n" + self.log())

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def cli(self, *args: str) -> dict[str, Any]:
        assert BIN
        out = subprocess.run(
            [BIN, *args, "--data-dir", str(self.data_dir), "--json"],
            check=True,
            capture_output=True,
            env=self.env,
        ).stdout
        return dict(json.loads(out))

    def create_key(self, kind: str, scopes: str, name: str | None = None) -> Key:
        name = name or f"py-{kind}-{secrets.token_hex(3)}"
        args = ["keys", "create", "--name", name, "--type", kind, "--scopes", scopes]
        if kind == "ed25519":
            private = Ed25519PrivateKey.generate()
            public = self.data_dir.parent / f"{name}.pub.pem"
            public.write_bytes(
                private.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            made = self.cli(*args, "--public-key", str(public))
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return Key(made["id"], pem=pem)
        made = self.cli(*args)
        return Key(made["id"], secret=made.get("secret") or made.get("token"))


@pytest.fixture
def gateway_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Gateway] = []

    def make(sim_rate: int = 40, start: bool = True) -> Gateway:
        data_dir = tmp_path / f"data-{len(started)}"
        data_dir.mkdir()
        env = dict(os.environ, TICKGATE_MASTER_KEY=secrets.token_hex(32), RUST_LOG="warn")
        gateway = Gateway(data_dir, free_port(), sim_rate, env)
        started.append(gateway)
        if start:
            gateway.start()
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


@pytest.fixture
def gateway(gateway_factory: Any) -> Gateway:
    g: Gateway = gateway_factory()
    return g


class CuttingProxy:
    """A TCP proxy whose ``cut()`` aborts every connection through it mid-stream."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        self._stall_below = 0  # connections numbered below this forward nothing

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def stall(self) -> None:
        """Every open connection stops forwarding (both ways) but stays open: a dead peer
        that only a heartbeat can detect. New connections work."""
        self._stall_below = self.connections + 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if number < self._stall_below:
                        await asyncio.Event().wait()  # held until the connection is dropped
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
async def proxy_to(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    proxies: list[CuttingProxy] = []

    async def make(port: int) -> CuttingProxy:
        proxy = CuttingProxy(port)
        await proxy.__aenter__()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.__aexit__()
