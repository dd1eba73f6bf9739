"""`crm-pipeline hubspot-sandbox` parses its flags into the local HubSpot's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_pipeline.cli import build_parser
from crm_pipeline.hubspot_sandbox import cli


def test_flags_become_the_served_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    served = {}
    monkeypatch.setattr("uvicorn.run", lambda app, **options: served.update(app=app, **options))
    args = build_parser().parse_args(
        [
            "hubspot-sandbox",
            "--port",
            "9001",
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
    assert (served["port"], sandbox.ten_secondly.limit, sandbox.config.tokens) == (9001, 190, ("pat-a",))
    assert sandbox.config.state_file == Path("hs.json")
