"""Private Redis processes for tests: single servers, shards, a cluster, Sentinel.

Every server is a real ``redis-server`` on a free loopback port with its own
temporary directory, no persistence, and is stopped when the test session (or
the fixture that made it) ends. Where ``redis-server`` is missing, tests skip with
the reason — unless the CI environment variable is set, in which case they fail.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.unavailable import unavailable

if TYPE_CHECKING:
    import pytest

STARTUP_TIMEOUT = 10.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def require_redis() -> str:
    """The redis-server path; skip (or, under CI, fail) when there is none."""
    binary = redis_server_binary()
    if binary is None:
        unavailable(
            "redis-server is not on PATH (install redis-server to run the Redis layer tests)"
        )
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command(port: int, *args: str | int, timeout: float = 5.0) -> Any:
    """Run one command on 127.0.0.1:``port`` with a plain blocking client."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=timeout)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


class RedisServer:
    """One ``redis-server`` process; can be stopped and started again on its port.

    ``cpu`` pins it with taskset (benchmarks); outside pytest a missing binary raises.
    """

    def __init__(
        self, *extra: str, port: int | None = None, sentinel: bool = False, cpu: str | None = None
    ) -> None:
        self.cpu = cpu
        if "pytest" in sys.modules:
            self.binary = require_redis()
        else:
            binary = redis_server_binary()
            if binary is None:
                raise RuntimeError("redis-server is not on PATH")
            self.binary = binary
        self.extra = list(extra)
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.sentinel = sentinel
        self.directory = Path(tempfile.mkdtemp(prefix="djwire-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> RedisServer:
        for _ in range(5):
            if self._try_start():
                return self
            if self.fixed_port:
                break
            self.port = free_port()  # somebody took the port between probe and bind
        raise RuntimeError(f"Could not start redis-server; see {self.directory}/redis.log")

    def _try_start(self) -> bool:
        config = self.directory / "redis.conf"
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            "protected-mode no",
            f"dir {self.directory}",
            "save ''",
            "appendonly no",
            f"logfile {self.directory / 'redis.log'}",
            *self.extra,
        ]
        config.write_text("\n".join(lines) + "\n")
        args = [self.binary, str(config)]
        if self.cpu is not None:
            args = ["taskset", "-c", self.cpu, *args]
        if self.sentinel:
            args.append("--sentinel")
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(Exception):
                if command(self.port, "PING", timeout=0.5):
                    return True
            time.sleep(0.02)
        self.stop()
        return False

    def stop(self, *, hard: bool = False) -> None:
        """Stop the server (``hard``: SIGKILL, like a crash)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self, *, down_for: float = 0.0) -> None:
        self.stop(hard=True)
        time.sleep(down_for)
        if not self._try_start():
            raise RuntimeError(f"redis-server did not come back on port {self.port}")

    def command(self, *args: str | int) -> Any:
        return command(self.port, *args)

    def connected_clients(self) -> int:
        info = self.command("INFO", "clients")
        if isinstance(info, dict):
            return int(info["connected_clients"])
        for line in info.decode().splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":")[1])
        raise RuntimeError("INFO clients has no connected_clients")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of ``masters`` masters (no replicas), made by redis-cli."""

    def __init__(self, masters: int = 3) -> None:
        require_redis()
        self.servers = [
            RedisServer(
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                "cluster-node-timeout 2000",
            )
            for _ in range(masters)
        ]

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> RedisCluster:
        cli = shutil.which("redis-cli")
        if cli is None:
            unavailable("redis-cli is not on PATH (needed to create a Redis Cluster)")
        for server in self.servers:
            server.start()
        nodes = [f"127.0.0.1:{server.port}" for server in self.servers]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [server.command("CLUSTER", "INFO") for server in self.servers]
            if all(b"cluster_state:ok" in _as_bytes(state) for state in states):
                return self
            time.sleep(0.1)
        raise RuntimeError("The Redis Cluster did not reach cluster_state:ok")

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()


class SentinelSetup:
    """A master, one replica, and two Sentinels watching them (quorum 1)."""

    MASTER_NAME = "djwire-test"

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica: RedisServer | None = None
        self.sentinels: list[RedisServer] = []

    def start(self) -> SentinelSetup:
        self.master.start()
        self.replica = RedisServer(f"replicaof 127.0.0.1 {self.master.port}").start()
        for _ in range(2):
            sentinel = RedisServer(
                f"sentinel monitor {self.MASTER_NAME} 127.0.0.1 {self.master.port} 1",
                f"sentinel down-after-milliseconds {self.MASTER_NAME} 400",
                f"sentinel failover-timeout {self.MASTER_NAME} 2000",
                f"sentinel parallel-syncs {self.MASTER_NAME} 1",
                sentinel=True,
            )
            self.sentinels.append(sentinel.start())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            replicas = self.master.command("INFO", "replication").get("connected_slaves")
            if replicas == 1 and self._sentinels_agree():
                return self
            time.sleep(0.1)
        raise RuntimeError("Replica or Sentinels did not come up")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            reply = sentinel.command("SENTINEL", "get-master-addr-by-name", self.MASTER_NAME)
            if not reply or int(reply[1]) != self.master.port:
                return False
            replicas = sentinel.command("SENTINEL", "replicas", self.MASTER_NAME)
            if not replicas:
                return False
        return True

    def host_config(self) -> dict[str, Any]:
        return {
            "sentinels": [sentinel.address for sentinel in self.sentinels],
            "master_name": self.MASTER_NAME,
        }

    def current_master_port(self) -> int:
        reply = self.sentinels[0].command("SENTINEL", "get-master-addr-by-name", self.MASTER_NAME)
        return int(reply[1])

    def servers(self) -> list[RedisServer]:
        return [self.master, *([self.replica] if self.replica else []), *self.sentinels]

    def cleanup(self) -> None:
        for server in self.servers():
            server.cleanup()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


# -- session-wide servers, shared by the contract suite and the Redis tests ----------------

_shared: dict[str, Any] = {}


def _shared_instance(config: pytest.Config, name: str, make: Any) -> Any:
    instance = _shared.get(name)
    if instance is None:
        instance = make()
        try:
            instance.start()
        except BaseException:
            instance.cleanup()
            raise
        _shared[name] = instance

        def cleanup() -> None:
            _shared.pop(name, None)
            instance.cleanup()

        config.add_cleanup(cleanup)
    return instance


def single_server(config: pytest.Config) -> RedisServer:
    server: RedisServer = _shared_instance(config, "single", RedisServer)
    return server


def shard_servers(config: pytest.Config) -> list[RedisServer]:
    return [_shared_instance(config, f"shard{n}", RedisServer) for n in range(3)]


def cluster(config: pytest.Config) -> RedisCluster:
    instance: RedisCluster = _shared_instance(config, "cluster", RedisCluster)
    return instance


# -- TLS ------------------------------------------------------------------------------------


def self_signed_certificate(directory: Path, name: str = "cert") -> tuple[Path, Path]:
    """Write ``name.pem`` and ``name.key``: a self-signed certificate for 127.0.0.1 and
    localhost, valid for a day (it is its own CA, so it can also be trusted by path)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "djwire test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer(RedisServer):
    """A server that also listens with TLS on ``tls_port``, with a self-signed
    certificate (``cert``); the plain port stays open for the fixtures' own checks.
    ``client_ca``: require client certificates signed by it."""

    def __init__(self, client_ca: Path | None = None) -> None:
        super().__init__()
        self.tls_port = free_port()
        self.cert, key = self_signed_certificate(self.directory)
        self.extra += [
            f"tls-port {self.tls_port}",
            f"tls-cert-file {self.cert}",
            f"tls-key-file {key}",
        ]
        if client_ca is None:
            self.extra.append("tls-auth-clients no")
        else:
            self.extra += [f"tls-ca-cert-file {client_ca}", "tls-auth-clients yes"]

    @property
    def tls_url(self) -> str:
        return f"rediss://127.0.0.1:{self.tls_port}/0"

    def start(self) -> TlsServer:
        for _ in range(3):
            if self._try_start():
                return self
            # A port taken between probe and bind, or no TLS in this build: retry once
            # or twice with fresh ports, then say what the server logged.
            self.port, old_tls_port, self.tls_port = free_port(), self.tls_port, free_port()
            self.extra[self.extra.index(f"tls-port {old_tls_port}")] = f"tls-port {self.tls_port}"
        log = self.directory / "redis.log"
        last = log.read_text().strip().splitlines()[-3:] if log.exists() else []
        unavailable(f"redis-server would not start with TLS (built without it?): {last}")


@contextlib.contextmanager
def tls_server(client_ca: Path | None = None) -> Iterator[TlsServer]:
    server = TlsServer(client_ca)
    try:
        yield server.start()
    finally:
        server.cleanup()


@contextlib.contextmanager
def private_server(*extra: str, port: int | None = None) -> Iterator[RedisServer]:
    """A server of one's own (for tests that restart or kill it)."""
    server = RedisServer(*extra, port=port).start()
    try:
        yield server
    finally:
        server.cleanup()
