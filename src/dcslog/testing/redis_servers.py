"""Real ``redis-server`` processes: a node, a primary with replicas, a 3-shard cluster.

Every node listens on its own loopback address (127.0.0.2, 127.0.0.3, ...) so
that topologies look like real multi-host deployments (distinct IPs, the same
or different ports), writes its run log to an absolute ``--logfile`` inside a
directory of its own, and is killed and reaped when its ``NodeSet`` closes --
and, should the interpreter exit without that (KeyboardInterrupt, an internal
error), at exit. The test suite's fixtures (``tests/redis_fixtures.py``) and the
benchmarks both start their nodes here.

A missing ``redis-server`` or ``redis-cli`` raises :class:`ToolMissing`; the
fixtures turn it into a test failure (never a skip: a silently skipped
integration suite proves nothing).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dcslog.testing.ports import free_redis_port
from dcslog.testing.processes import die_with_parent, stop_processes
from dcslog.testing.waiting import wait_for

REDIS_SERVER = "redis-server"
REDIS_CLI = "redis-cli"
START_TIMEOUT = 10.0

# Default ``logfile`` argument meaning "an absolute redis.log in the node's dir".
DEFAULT_LOGFILE = object()

# Every process started here, so that an interpreter exit without fixture
# teardown (KeyboardInterrupt, internal error) still leaves no stray servers.
_LIVE: set[subprocess.Popen] = set()


def _kill_all_live() -> None:
    for proc in list(_LIVE):
        _terminate(proc)


atexit.register(_kill_all_live)


class ToolMissing(RuntimeError):
    """A program the real servers need is not installed."""


def redis_server_path() -> str:
    """Absolute path of ``redis-server``; ``ToolMissing`` when it is not on PATH."""
    path = shutil.which(REDIS_SERVER)
    if path is None:
        raise ToolMissing("redis-server is not on PATH: the Redis integration tests need a real "
                          "redis-server (Debian/Ubuntu: apt-get install redis-server)")
    return path


def _terminate(proc: subprocess.Popen) -> None:
    stop_processes(proc, sig=signal.SIGTERM, timeout=5)  # SIGCONT first: a paused server cannot act on SIGTERM
    _LIVE.discard(proc)


@dataclass
class TlsFiles:
    """Self-signed server certificate (also used as the CA) for TLS tests."""

    cert: str
    key: str

    @classmethod
    def create(cls, directory: Path, hosts: Sequence[str] = ("127.0.0.2",)) -> TlsFiles:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dcslog-test")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "tls.crt", directory / "tls.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        return cls(str(cert_path), str(key_path))


class RedisNode:
    """One ``redis-server`` process on ``host:port`` with its own dir and log file.

    ``log_file`` is the absolute path the server writes its run log to, or
    None when it logs to stdout (``logfile=""``).  ``stop()``/``start()``
    restart the node on the same port with the same files.
    """

    def __init__(
        self,
        host: str,
        port: int,
        dir: Path,
        *,
        args: Sequence[str] = (),
        password: str | None = None,
        logfile: str | None | object = DEFAULT_LOGFILE,
        tls: TlsFiles | None = None,
        server: str | None = None,
        pipes: Callable[[subprocess.Popen], None] | None = None,
    ) -> None:
        self.server = server  # the executable: redis-server from PATH unless given (valkey_server_path())
        self.host = host
        self.port = port
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.password = password
        self.tls = tls
        if logfile is DEFAULT_LOGFILE:
            logfile = str(self.dir / "redis.log")
        self.logfile_arg: str = "" if logfile is None else str(logfile)
        if self.logfile_arg == "":
            self.log_file: str | None = None
        else:
            # Relative paths are relative to --dir (the server runs with cwd=dir).
            self.log_file = os.path.join(str(self.dir), self.logfile_arg)
        self.proc: subprocess.Popen | None = None
        # Given: stdout and stderr are pipes, handed to it as soon as the process starts (a test
        # reading them as a container runtime does); else they go to the file stdout.txt.
        self.pipes = pipes

    # -- addressing -------------------------------------------------------
    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{self.password}@" if self.password else ""
        query = "?ssl_cert_reqs=none" if self.tls else ""
        return f"{scheme}://{auth}{self.host}:{self.port}{query}"

    def client(self, **kwargs) -> redis.Redis:
        """A sync redis-py client (decode_responses=True); caller closes it."""
        opts: dict = dict(
            host=self.host,
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        if self.tls:
            opts.update(ssl=True, ssl_cert_reqs="none")
        opts.update(kwargs)
        return redis.Redis(**opts)

    # -- lifecycle --------------------------------------------------------
    def command_line(self) -> list[str]:
        cmd = [
            self.server or shutil.which(REDIS_SERVER) or REDIS_SERVER,
            "--bind", self.host,
            "--dir", str(self.dir),
            "--logfile", self.logfile_arg,
            "--daemonize", "no",
            "--save", "",
            "--appendonly", "no",
            "--enable-debug-command", "yes",
            "--protected-mode", "no",
            # Outgoing connections (replication, cluster bus) must come from
            # the node's own address: otherwise Linux picks 127.0.0.1, the
            # primary lists the replica as 127.0.0.1 and cluster peers
            # cannot finish the handshake.
            "--bind-source-addr", self.host,
            # Replicas sync at once instead of after the default 5 s delay.
            "--repl-diskless-sync-delay", "0",
        ]
        if self.tls:
            cmd += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", self.tls.cert,
                "--tls-key-file", self.tls.key,
                "--tls-ca-cert-file", self.tls.cert,
                "--tls-auth-clients", "no",
                "--tls-replication", "yes",
            ]
        else:
            cmd += ["--port", str(self.port)]
        if self.password:
            cmd += ["--requirepass", self.password, "--masterauth", self.password]
        return cmd + self.args

    def start(self, timeout: float = START_TIMEOUT) -> RedisNode:
        """Start (or restart) the server and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        # stdout/stderr go to a file: with logfile "" that *is* the run log,
        # and otherwise it catches start-up errors for the failure message.
        out = open(self.dir / "stdout.txt", "ab")
        try:
            self.proc = subprocess.Popen(
                self.command_line(),
                cwd=str(self.dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.pipes else out,
                stderr=subprocess.PIPE if self.pipes else subprocess.STDOUT,
                # PDEATHSIG fires when the *thread* that forked exits, so only
                # use it from the main thread.
                preexec_fn=die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        finally:
            out.close()
        _LIVE.add(self.proc)
        if self.pipes:
            self.pipes(self.proc)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                break
            try:
                with contextlib.closing(self.client(socket_timeout=1, socket_connect_timeout=1)) as c:
                    if c.ping():
                        return
            except redis.RedisError as exc:
                last = exc
            time.sleep(0.05)
        diag = self.diagnostics()
        self.stop()
        raise RuntimeError(f"redis-server {self.address} did not start ({last!r}):\n{diag}")

    def diagnostics(self, lines: int = 30) -> str:
        """The tail of the node's log (or stdout) for failure messages."""
        texts = []
        for path in filter(None, [self.log_file, str(self.dir / "stdout.txt")]):
            with contextlib.suppress(OSError):
                texts.append("\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(texts)

    def stop(self) -> None:
        """Terminate the server and reap it (SIGKILL after 5 s)."""
        if self.proc is not None:
            _terminate(self.proc)

    def pause(self) -> None:
        """SIGSTOP the server: its connections stay open (peers keep listing
        it) but it answers nothing -- an unreachable-but-known node."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def info(self, section: str | None = None) -> dict:
        with contextlib.closing(self.client()) as c:
            return c.info(section) if section else c.info()

    def __repr__(self) -> str:
        return f"RedisNode({self.address}, log_file={self.log_file!r})"


class NodeSet:
    """Creates nodes under one base directory and stops them all on close()."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)
        self.nodes: list[RedisNode] = []

    def new(
        self,
        host: str = "127.0.0.2",
        *,
        args: Sequence[str] = (),
        password: str | None = None,
        logfile: str | None | object = DEFAULT_LOGFILE,
        port: int | None = None,
        tls: TlsFiles | None = None,
        start: bool = True,
        server: str | None = None,
        pipes: Callable[[subprocess.Popen], None] | None = None,
    ) -> RedisNode:
        port = port or free_redis_port(host)
        node = RedisNode(
            host, port, self.base / f"{host}-{port}",
            args=args, password=password, logfile=logfile, tls=tls, server=server, pipes=pipes,
        )
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.stop()


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """``wait_for`` with a node that does not answer yet counted as "not yet"."""
    wait_for(pred, timeout, 0.05, what, ignore=(redis.RedisError,))


# ---------------------------------------------------------------------------
# Replicated (primary + 2 replicas)


@dataclass
class ReplicatedRedis:
    primary: RedisNode
    replicas: list[RedisNode]

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.primary, *self.replicas]


def start_replicated(nodes: NodeSet, replica_hosts: Sequence[str] = ("127.0.0.3", "127.0.0.4"),
                     password: str | None = None) -> ReplicatedRedis:
    primary = nodes.new("127.0.0.2", password=password)
    replicas = [
        nodes.new(h, password=password, args=["--replicaof", primary.host, str(primary.port)])
        for h in replica_hosts
    ]

    def linked() -> bool:
        if any(r.info("replication").get("master_link_status") != "up" for r in replicas):
            return False
        return primary.info("replication").get("connected_slaves") == len(replicas)

    wait_until(linked, 15, "replicas to link to the primary")
    return ReplicatedRedis(primary, replicas)


# ---------------------------------------------------------------------------
# Cluster (3 masters + 3 replicas)

CLUSTER_MASTER_HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
CLUSTER_REPLICA_HOSTS = ("127.0.0.5", "127.0.0.6", "127.0.0.7")


@dataclass
class RedisClusterNodes:
    """A running cluster; ``masters[i]`` serves the i-th slot range, ``replicas[i]`` replicates it."""

    masters: list[RedisNode]
    replicas: list[RedisNode]
    node_ids: dict[str, str] = field(default_factory=dict)  # "host:port" -> cluster node id

    @property
    def nodes(self) -> list[RedisNode]:
        return [*self.masters, *self.replicas]

    @property
    def url(self) -> str:
        return self.masters[0].url

    def node(self, address: str) -> RedisNode:
        return next(n for n in self.nodes if n.address == address)


def _cluster_nodes(node: RedisNode) -> list[list[str]]:
    # Two-word form: redis-py has a parsing callback for "CLUSTER NODES" but
    # none for "CLUSTER", so this returns the raw text.
    with contextlib.closing(node.client()) as c:
        raw = c.execute_command("CLUSTER", "NODES")
    return [line.split() for line in raw.splitlines() if line.strip()]


def start_cluster(nodes: NodeSet) -> RedisClusterNodes:
    args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000"]
    all_nodes = [nodes.new(h, args=args) for h in (*CLUSTER_MASTER_HOSTS, *CLUSTER_REPLICA_HOSTS)]
    cli = shutil.which(REDIS_CLI)
    if cli is None:
        raise ToolMissing("redis-cli is not on PATH: needed to create the test cluster (apt-get install redis-tools)")
    created = subprocess.run(
        [cli, "--cluster", "create", *(n.address for n in all_nodes),
         "--cluster-replicas", "1", "--cluster-yes"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )
    if created.returncode != 0:
        raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")

    def view(n: RedisNode) -> frozenset | None:
        """``n``'s settled picture of the cluster, or None while it is still settling."""
        if n.info("cluster").get("cluster_enabled") != 1:
            return None
        with contextlib.closing(n.client()) as c:
            if "cluster_state:ok" not in c.execute_command("CLUSTER", "INFO"):
                return None
        rows = []
        for r in _cluster_nodes(n):
            flags = set(r[2].split(",")) - {"myself"}
            if flags not in ({"master"}, {"slave"}) or r[7] != "connected":
                return None  # fail?, fail, handshake, noaddr, or a link down
            rows.append((r[0], r[1].split("@")[0], r[2].replace("myself,", ""), r[3], tuple(r[8:])))
        return frozenset(rows)

    def converged() -> bool:
        # Every node must tell the same story: 3 masters with slots, each with
        # one replica, all links connected.  Counting flags alone let a test
        # start while one node still had a replica attached elsewhere.
        views = {view(n) for n in all_nodes}
        if len(views) != 1 or None in views:
            return False
        (rows,) = views
        assert rows is not None  # ruled out just above
        masters = {r[0] for r in rows if r[2] == "master" and r[4]}
        return len(masters) == 3 and sorted(r[3] for r in rows if r[2] == "slave") == sorted(masters)

    wait_until(converged, 30, "cluster_state:ok with 3 masters and 3 replicas on every node")

    # redis-cli picks which node replicates which; read the result back.
    rows = _cluster_nodes(all_nodes[0])
    by_id = {r[0]: r for r in rows}
    addr = lambda r: r[1].split("@")[0]  # noqa: E731
    masters = sorted(
        (r for r in rows if "master" in r[2].split(",") and len(r) > 8),
        key=lambda r: int(r[8].split("-")[0]),
    )
    lookup = {n.address: n for n in all_nodes}
    ordered_masters = [lookup[addr(r)] for r in masters]
    ordered_replicas = []
    for m in masters:
        rep = next(r for r in rows if r[3] == m[0])
        ordered_replicas.append(lookup[addr(rep)])
    return RedisClusterNodes(
        ordered_masters, ordered_replicas, {addr(r): r[0] for r in by_id.values()}
    )
