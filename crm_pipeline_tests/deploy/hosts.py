"""Worker "hosts" on this machine: network namespaces of their own, each with its own address on a
private subnet bridged to the root namespace, where PostgreSQL, the Redis broker and the sandbox
Notion listen on the bridge's address. Dagster's daemon and webserver stay in the root namespace;
each host runs a Celery worker (`crm-pipeline worker`) that reaches everything over its link.

Names and the subnet are drawn per use, so runs side by side do not clash; everything made here
is removed on exit, whatever happened (the hosts' processes killed, the namespaces and the bridge
deleted). Needs root and iproute2.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import URL

from crm_pipeline.workers import worker_command, worker_environment

GENEROUS_WAIT = 60.0


def can_make_hosts() -> str | None:
    """Why this machine cannot make namespaced hosts, or None when it can."""
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is missing"
    if shutil.which("redis-server") is None:
        return "redis-server is missing (scripts/ensure-redis installs it)"
    return None


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 under 10.0.0.0/8 that no interface of this machine is on."""
    taken = subprocess.run(["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True).stdout
    while True:
        subnet = ipaddress.IPv4Network(f"10.{secrets.randbelow(150) + 100}.{secrets.randbelow(250) + 1}.0/24")
        if f" {str(subnet.network_address)[:-1]}" not in taken:
            return subnet


@dataclass
class Host:
    """A network namespace with its own address, and the worker running in it (if any)."""

    name: str
    address: str
    worker: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def processes(self) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.name], check=False, capture_output=True, text=True)
        return [int(pid) for pid in listed.stdout.split()]

    def lose(self) -> None:
        """The host is gone: every process in it killed at once (SIGKILL), as a power cut would."""
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.worker is not None:
            self.worker.wait(timeout=GENEROUS_WAIT)


@dataclass
class Network:
    """The bridge (its address is where the services listen) and the hosts on it."""

    address: str
    hosts: list[Host] = field(default_factory=list)


@contextmanager
def network(count: int) -> Iterator[Network]:
    """``count`` hosts bridged to the root namespace; all removed on exit."""
    tag = secrets.token_hex(3)
    subnet = _free_subnet()
    addresses = list(subnet.hosts())
    bridge = f"crmb{tag}"
    with ExitStack() as cleanup:
        ip("link", "add", "name", bridge, "type", "bridge")
        cleanup.callback(ip, "link", "del", bridge)
        ip("addr", "add", f"{addresses[0]}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        made = Network(str(addresses[0]))
        for n in range(count):
            host = Host(f"crm-{tag}-host-{n}", str(addresses[10 + n]))
            outside, inside = f"crm{tag}{n}", f"crm{tag}{n}i"
            ip("netns", "add", host.name)
            cleanup.callback(ip, "netns", "del", host.name)
            cleanup.callback(host.lose)  # runs first: nothing is left running in it
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", host.name)
            ip("link", "set", outside, "master", bridge, "up")
            ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", inside)
            ip("-n", host.name, "link", "set", inside, "up")
            ip("-n", host.name, "link", "set", "lo", "up")
            made.hosts.append(host)
        yield made


@contextmanager
def redis_server(folder: Path, host: str, port: int) -> Iterator[tuple[str, int]]:
    """Debian's redis-server on ``host:port`` with a password of its own (off the loopback
    interface Redis refuses clients without one), persisting nothing, in ``folder``; yields its
    URL and pid, stops it on exit."""
    password = secrets.token_hex(16)
    command = ["redis-server", "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*command, "--requirepass", password], cwd=folder, stdout=subprocess.DEVNULL)
    url = f"redis://:{password}@{host}:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def postgres_over_tcp(url: URL, host: str) -> Iterator[URL]:
    """The deal store's PostgreSQL reachable on ``host``: a TCP port there relays each connection
    to the server (the embedded one's Unix socket, or an external server's own address, which the
    hosts cannot reach), and closes it when its client's side closes (so a lost host's sessions
    end and their advisory locks go). Yields ``url`` over it."""
    socket = url.query.get("host")
    port = url.port or 5432
    loop = asyncio.new_event_loop()

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if socket is not None:
            return await asyncio.open_unix_connection(str(Path(str(socket)) / f".s.PGSQL.{port}"))
        return await asyncio.open_connection(url.host or "127.0.0.1", port)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await connect()
        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    server = loop.run_until_complete(asyncio.start_server(relay, host, 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        query = {key: value for key, value in url.query.items() if key != "host"}
        yield url.set(host=host, port=server.sockets[0].getsockname()[1], query=query)
    finally:

        async def close() -> None:
            server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def wait_for_workers(broker: str, hosts: Sequence[Host]) -> None:
    """Until every host's worker answers a ping over the broker."""
    from celery import Celery

    app = Celery(broker=broker)
    deadline = time.monotonic() + GENEROUS_WAIT
    wanted = {host.name for host in hosts}
    while True:
        answered = {name.split("@")[0] for reply in app.control.ping(timeout=1.0) for name in reply}
        if wanted <= answered:
            return
        dead = [host.name for host in hosts if host.worker is not None and host.worker.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(
                f"{host.name}: {host.log.read_text(errors='replace')[-3000:]}" for host in hosts if host.log is not None
            )
            raise RuntimeError(f"workers not up: {sorted(wanted - answered)} (exited: {dead})\n{logs}")


@contextmanager
def worker_on(
    host: Host, broker: str, environment: Mapping[str, str], log: Path, processes: int = 1, limit: Sequence[str] = ()
) -> Iterator[Host]:
    """`crm-pipeline worker`'s command in ``host``'s namespace (its node name the host's), with
    ``environment`` (the instance's, as that host sees it), under ``limit`` when given (a command
    prefix that confines it to a CPU share)."""
    # The limit goes first: `ip netns exec` mounts a sysfs of its own, without the cgroups.
    command = [*limit, "ip", "netns", "exec", host.name, *worker_command(host.name, processes)]
    host.log = log
    with log.open("ab") as output:
        host.worker = subprocess.Popen(
            command, env=worker_environment(broker) | dict(environment), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield host
    finally:
        host.lose()
