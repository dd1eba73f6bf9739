"""The sandbox Notion in a process of its own, so a benchmark measures it apart from its client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def sandbox_process(*flags: str, host: str = "127.0.0.1") -> Iterator[str]:
    """`crm-pipeline sandbox FLAGS…` on a free port of ``host`` (loopback unless given); yields
    its base URL, stops it on exit."""
    port = free_port(host)
    command = [sys.executable, "-m", "crm_pipeline.cli", "sandbox", "--host", host, "--port", str(port), *flags]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base_url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base_url}/_sandbox/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)
