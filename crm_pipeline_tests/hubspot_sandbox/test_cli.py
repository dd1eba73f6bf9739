"""`crm-pipeline hubspot-sandbox` parses its flags into the local HubSpot's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_pipeline.cli import build_parser
from crm_pipeline.hubspot_sandbox import cli
from crm_pipeline_tests.dagster_processes import free_port


def test_flags_become_the_served_settings(served_by_command: dict[str, Any]) -> None:
    port = free_port()
    args = build_parser().parse_args(
        [
            "hubspot-sandbox",
            "--port",
            str(port),
            "--ten-secondly-limit",
            "190",
            "--token",
            "pat-a",
            "--state-file",
            "hs.json",
        ]
    )
    assert args.handler is cli.run_hubspot_sandbox
    assert args.handler(args) == 0
    sandbox = served_by_command["app"].state.sandbox
    assert (served_by_command["port"], sandbox.ten_secondly.limit, sandbox.config.tokens) == (port, 190, ("pat-a",))
    assert sandbox.config.state_file == Path("hs.json")


def test_port_0_serves_on_a_free_port_and_says_which(
    served_by_command: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["hubspot-sandbox", "--port", "0"])
    assert args.handler(args) == 0
    assert served_by_command["port"] != 0
    assert capsys.readouterr().out.startswith(f"Local HubSpot on http://127.0.0.1:{served_by_command['port']} ")
