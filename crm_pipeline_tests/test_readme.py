"""Every ```python block of README.md runs as written, in a subprocess, against this session's deal
store and a sandbox Notion; a comment after a `print(...)` is the line it must print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from crm_pipeline.dev import _notion
from crm_pipeline.settings import PROJECT_ROOT, Settings
from crm_pipeline.store import Database
from crm_pipeline_tests.dagster_processes import free_port

README = (PROJECT_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)
PRINTED = re.compile(r"^\s*print\(.*\)  # (.+)$", flags=re.MULTILINE)


def run_block(block: str, environment: Mapping[str, str]) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", block], env=environment, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.splitlines() == PRINTED.findall(block)


@pytest.fixture
def environment(store_settings: Settings, database: Database) -> dict[str, str]:
    """This session's deal store: its database on the embedded server, or the external one."""
    return os.environ | {
        "CRM_PIPELINE_DATA_DIR": str(store_settings.data_dir),
        "CRM_PIPELINE_DATABASE_NAME": store_settings.database_name,
    }


@contextmanager
def sandbox_from_the_command_line(port: int) -> Iterator[str]:
    """`crm-pipeline sandbox --seed crm_pipeline/sandbox/deals_seed.json`, as the README shows it."""
    command = [sys.executable, "-m", "crm_pipeline.cli", "sandbox", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--seed", "crm_pipeline/sandbox/deals_seed.json"], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base_url}/_sandbox/settings", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, "the sandbox exited"
                time.sleep(0.05)
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2
    assert all(PRINTED.search(block) for block in BLOCKS), "every example shows what it prints"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_example_runs_against_the_demo(block: str, environment: dict[str, str], tmp_path: Path) -> None:
    """Against the deal store and the sandbox Notion `scripts/demo` (`crm-pipeline dev`) serves."""
    settings = Settings(data_dir=tmp_path, sandbox_port=0)
    with _notion(settings) as notion:
        base_url = f"http://127.0.0.1:{notion['CRM_PIPELINE_SANDBOX_PORT']}"
        run_block(block, environment | {"CRM_PIPELINE_NOTION_BASE_URL": base_url})


@pytest.mark.parametrize("block", [block for block in BLOCKS if "notion_client" in block])
def test_sandbox_example_runs_against_the_seeded_sandbox(block: str, environment: dict[str, str]) -> None:
    with sandbox_from_the_command_line(free_port()) as base_url:
        run_block(block, environment | {"CRM_PIPELINE_NOTION_BASE_URL": base_url})
