"""`crm-pipeline salesforce-sandbox` parses its flags into the local Salesforce's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm_pipeline.cli import build_parser
from crm_pipeline.salesforce_sandbox import cli
from crm_pipeline_tests.dagster_processes import free_port


def test_flags_become_the_served_settings(
    served_by_command: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    argv = ["salesforce-sandbox", "--port", str(port), "--daily-api-max", "900", "--query-page-cap", "50"]
    args = build_parser().parse_args([*argv, "--token", "00Dx!a", "--state-file", "sf.json"])
    assert args.handler is cli.run_salesforce_sandbox
    assert args.handler(args) == 0
    sandbox = served_by_command["app"].state.sandbox
    assert (served_by_command["port"], sandbox.daily.limit, sandbox.query_page_cap) == (port, 900, 50)
    assert (sandbox.config.tokens, sandbox.config.state_file) == (("00Dx!a",), Path("sf.json"))
    assert capsys.readouterr().out.startswith(f"Local Salesforce on http://127.0.0.1:{port} ")
