"""`crm-pipeline hubspot-sandbox` parses its flags into the local HubSpot's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_pipeline.cli import build_parser
from crm_pipeline.hubspot_sandbox import cli
from crm_pipeline_tests.dagster_processes import free_port


def test_flags_become_the_served_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    served = {}
    monkeypatch.setattr(
        "crm_pipeline.emulation.server.serve_forever",
        lambda app, sock: served.update(app=app, port=sock.getsockname()[1]),
    )
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
    sandbox = served["app"].state.sandbox
    assert (served["port"], sandbox.ten_secondly.limit, sandbox.config.tokens) == (port, 190, ("pat-a",))
    assert sandbox.config.state_file == Path("hs.json")


def test_port_0_serves_on_a_free_port_and_says_which(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bound = {}
    monkeypatch.setattr(
        "crm_pipeline.emulation.server.serve_forever", lambda app, sock: bound.update(port=sock.getsockname()[1])
    )
    args = build_parser().parse_args(["hubspot-sandbox", "--port", "0"])
    assert args.handler(args) == 0
    assert bound["port"] != 0
    assert capsys.readouterr().out.startswith(f"Local HubSpot on http://127.0.0.1:{bound['port']} ")
