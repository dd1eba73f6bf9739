"""Every shell block (```sh, ```bash, ```console) of README.md and docs/*.md runs as written, pasted
in order (README.md, then docs/ by name) into one bash session at the checkout root, with .venv/bin on
PATH, after the quick start has set up the demo: what `crm-pipeline dev` starts before Dagster (the
seeded deal store, the tenants file, the sandbox Notion, the local HubSpot and the local Salesforce),
in a data directory and on ports of this test's own, given to the commands as their settings.

The conventions the docs follow (README.md, "Commands in the docs"):
- a command whose comment says ``until Ctrl-C`` serves: it is started with the session's exported
  variables and directory, its first printed address (a URL, or ``port N``) must answer, and then
  it gets Ctrl-C (SIGINT to its process group) and must exit 0;
- a block right after ``<!-- not run: why -->`` is not run, and says why.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from crm_pipeline.dev import _hubspot, _notion, _prepare, _salesforce
from crm_pipeline.settings import PROJECT_ROOT, Settings
from crm_pipeline_tests.dagster_processes import GENEROUS_WAIT, free_port, start_in_own_group, stop_group

DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|bash|shell|console)\n(.*?)^```", flags=re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run: (?P<why>.*?) -->\s*$")
SERVES = "until Ctrl-C"
ADDRESS = re.compile(r"https?://(?P<host>[\w.-]+):(?P<port>\d+)|\bport (?P<bare_port>\d+)")


@dataclass(frozen=True)
class ShellBlock:
    document: str
    line: int
    """The line of its opening fence, for messages."""
    language: str
    text: str
    not_run: str | None
    """Why the block is not run (its ``<!-- not run: … -->``), or None."""

    def commands(self) -> list[str]:
        """Its commands: lines joined at a trailing backslash, a console block's ``$ `` lines only,
        without blank and comment-only lines."""
        joined = re.sub(r"\\\n", " ", self.text)
        lines = [line.strip() for line in joined.splitlines()]
        if self.language == "console":
            lines = [line[2:] for line in lines if line.startswith("$ ")]
        return [line for line in lines if line and not line.startswith("#")]

    def __str__(self) -> str:
        return f"{self.document}:{self.line}"


def shell_blocks(path: Path) -> list[ShellBlock]:
    text = path.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = NOT_RUN.search(before)
        blocks.append(
            ShellBlock(
                document=str(path.relative_to(PROJECT_ROOT)),
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(1),
                text=match.group(2),
                not_run=marker.group("why").strip() if marker else None,
            )
        )
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in shell_blocks(path)]


class ShellSession:
    """One bash reading commands as if pasted into a terminal: variables and the directory carry
    over from one command to the next. Each command's exit status comes back on a pipe of its own;
    its output goes to ``log``, and its stdin is /dev/null (not the commands still to come)."""

    def __init__(self, cwd: Path, environment: dict[str, str], log: Path) -> None:
        self.log = log
        self.status, status_writer = os.pipe()
        self.status_fd = status_writer
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [shutil.which("bash") or "bash", "--noprofile", "--norc"],
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=environment,
                pass_fds=(status_writer,),
                start_new_session=True,
            )
        os.close(status_writer)

    def run(self, command: str, timeout: float = GENEROUS_WAIT) -> int:
        with self.log.open("a") as output:
            output.write(f"\n$ {command}\n")
        started = time.monotonic()
        self._send(f"{{\n{command}\n}} </dev/null\nprintf '%s\\n' $? >&{self.status_fd}\n")
        ready, _, _ = select.select([self.status], [], [], timeout)
        if not ready:
            raise TimeoutError(f"{command!r} still running after {timeout} s:\n{self.tail()}")
        status = int(os.read(self.status, 64).decode().strip())
        with self.log.open("a") as output:
            output.write(f"(exit {status} after {time.monotonic() - started:.1f} s)\n")
        return status

    def exported(self, scratch: Path) -> tuple[dict[str, str], Path]:
        """The session's exported variables and working directory, for a command run beside it."""
        self.run(f"env -0 > {scratch}/env; pwd > {scratch}/cwd")
        pairs = (entry.split("=", 1) for entry in (scratch / "env").read_text().split("\0") if "=" in entry)
        return dict(pairs), Path((scratch / "cwd").read_text().strip())

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode())
        self.process.stdin.flush()

    def tail(self, characters: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def close(self) -> None:
        """End the session; a command still running (one that timed out) is stopped with it."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=GENEROUS_WAIT if self.process.poll() is None else 0)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        os.close(self.status)


def serve_until_answering(command: str, environment: dict[str, str], cwd: Path, log: Path) -> None:
    """Start a serving command, wait until the first address it prints answers, then Ctrl-C it;
    it must exit 0."""
    with log.open("wb") as output:
        server = start_in_own_group(
            [shutil.which("bash") or "bash", "-c", command],
            cwd=cwd,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + GENEROUS_WAIT
        while not _answers(log.read_text(errors="replace")):
            assert server.poll() is None, f"{command!r} exited {server.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{command!r} never answered:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
    finally:
        exit_code = stop_group(server)
    assert exit_code == 0, f"{command!r} exited {exit_code} on Ctrl-C:\n{log.read_text()[-3000:]}"


def _answers(output: str) -> bool:
    """Whether the first address in a server's output answers: any HTTP response, or a connection."""
    address = ADDRESS.search(output)
    if address is None:
        return False
    host = address.group("host") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "localhost") else host
    if address.group("bare_port") is None:
        try:
            httpx.get(f"http://{host}:{address.group('port')}/", timeout=5)
        except httpx.TransportError:
            return False
        return True
    try:
        socket.create_connection((host, int(address.group("bare_port"))), timeout=5).close()
    except OSError:
        return False
    return True


@contextmanager
def quick_start(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """What `scripts/demo` (`crm-pipeline dev`) sets up before it starts Dagster, kept up for the
    commands: the migrated, seeded deal store with the demo tenants registered, the sandbox Notion, the
    local HubSpot and the local Salesforce. Yields the settings that point the commands at them."""
    for token in ("CRM_PIPELINE_NOTION_TOKEN", "CRM_PIPELINE_HUBSPOT_TOKEN", "CRM_PIPELINE_SALESFORCE_TOKEN"):
        monkeypatch.delenv(token, raising=False)
    settings = Settings(
        data_dir=data_dir,
        database_url=None,
        app_database_url=None,
        sandbox_port=0,
        hubspot_sandbox_port=0,
        salesforce_sandbox_port=0,
    )
    asyncio.run(_prepare(settings, seed=True))  # the demo tenants registered too
    with ExitStack() as stack:
        notion = stack.enter_context(_notion(settings))
        hubspot = stack.enter_context(_hubspot(settings, seed=True))
        salesforce = stack.enter_context(_salesforce(settings, seed=True))
        yield {"CRM_PIPELINE_DATA_DIR": str(data_dir), **notion, **hubspot, **salesforce}


def test_the_docs_have_shell_blocks_and_say_why_one_is_not_run() -> None:
    assert len(BLOCKS) >= 5
    assert all(block.not_run != "" for block in BLOCKS), "a block that is not run says why"
    assert sum(block.not_run is None for block in BLOCKS) > sum(block.not_run is not None for block in BLOCKS)


@pytest.mark.long
def test_every_shell_block_runs_as_written_after_the_quick_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Short, unlike pytest's: PostgreSQL's socket path (scripts/with-external-postgres puts it under
    # TMPDIR) must stay under 108 bytes.
    scratch = Path(tempfile.mkdtemp(prefix="docs-", dir="/tmp"))
    scratch.chmod(0o755)  # the PostgreSQL server's own user passes through it
    stack = ExitStack()
    stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    with stack, quick_start(tmp_path / "data", monkeypatch) as settings:
        environment = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # .venv/bin
            "HOME": str(home),
            "TMPDIR": str(scratch),  # a pytest run among the commands keeps its temporary files here
            "LANG": "C.UTF-8",
            **settings,
            "DAGSTER_DG_DEV_PORT": str(free_port()),  # where `dg dev` serves without -p
        }
        session = ShellSession(PROJECT_ROOT, environment, tmp_path / "session.log")
        try:
            for block in BLOCKS:
                if block.not_run is not None:
                    continue
                for number, command in enumerate(block.commands()):
                    if SERVES in command:
                        exported, cwd = session.exported(scratch)
                        serve_until_answering(
                            command,
                            exported,
                            cwd,
                            tmp_path / f"server-{Path(block.document).stem}-{block.line}-{number}.log",
                        )
                    else:
                        status = session.run(command)
                        assert status == 0, f"{block}: {command!r} exited {status}:\n{session.tail()}"
        finally:
            session.close()
