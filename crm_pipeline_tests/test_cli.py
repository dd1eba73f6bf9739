"""`crm-pipeline`: each command is found by its name, and loads only its own module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from crm_pipeline.cli import COMMANDS, build_parser


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_command_is_registered_by_the_module_it_is_listed_with(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser(command).parse_args([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: crm-pipeline {command}")


def test_the_overview_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)


def test_a_command_that_needs_no_dagster_does_not_load_it() -> None:
    """`tenants generate-key` (like `tenants list`) starts without importing Dagster."""
    script = (
        "import sys; from crm_pipeline.cli import main; code = main(['tenants', 'generate-key']); "
        "print('dagster' in sys.modules); sys.exit(code)"
    )
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    key, loaded = finished.stdout.splitlines()
    assert len(key) == 44 and loaded == "False"
