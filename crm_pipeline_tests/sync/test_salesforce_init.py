"""`crm-pipeline salesforce-init --verify`: an org set up for the mapping fits, with or without the
integration user's username; a drifted one is refused with each problem named; the token is never
printed."""

from __future__ import annotations

import pytest

from crm_pipeline.cli import main
from crm_pipeline.salesforce_sandbox import DEFAULT_TOKEN, RunningSalesforce, SalesforceControl
from crm_pipeline_tests.conftest import SALESFORCE_USERNAME

pytestmark = pytest.mark.integration


def verify(
    org: RunningSalesforce, capsys: pytest.CaptureFixture[str], username: str | None = SALESFORCE_USERNAME
) -> tuple[int, str, str]:
    arguments = ["--instance-url", org.base_url, "--token-env", "ACME_SF_TOKEN"]
    arguments += ["--username", username] if username else []
    code = main(["salesforce-init", "--verify", *arguments])
    out, err = capsys.readouterr()
    assert DEFAULT_TOKEN not in out + err
    return code, out, err


def test_an_org_set_up_for_the_mapping_fits(
    salesforce_org: RunningSalesforce, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SF_TOKEN", DEFAULT_TOKEN)
    code, out, err = verify(salesforce_org, capsys)
    assert (code, err) == (0, "") and "Sync_Key__c" in out


def test_without_a_username_the_tokens_identity_is_the_integration_user(
    salesforce_org: RunningSalesforce, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SF_TOKEN", DEFAULT_TOKEN)
    code, out, err = verify(salesforce_org, capsys, username=None)
    assert (code, err) == (0, "") and "fits" in out


def test_a_drifted_org_is_refused_with_each_problem_named(
    salesforce_org: RunningSalesforce,
    salesforce_control: SalesforceControl,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACME_SF_TOKEN", DEFAULT_TOKEN)
    salesforce_control.setup(custom_fields=[], sync_key_unique=False)
    code, out, err = verify(salesforce_org, capsys)
    assert code == 2
    assert "Sync_Key__c" in err and "Manual_Tags__c" in err and "Override_Stage__c" in err


def test_a_missing_or_refused_token_is_said(
    salesforce_org: RunningSalesforce,
    salesforce_control: SalesforceControl,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACME_SF_TOKEN", raising=False)
    assert verify(salesforce_org, capsys)[::2] == (
        2,
        "crm-pipeline salesforce-init: no access token in ACME_SF_TOKEN\n",
    )
    monkeypatch.setenv("ACME_SF_TOKEN", "expired-session")
    salesforce_control.grant_token("expired-session")
    salesforce_control.expire_token("expired-session")
    code, _, err = verify(salesforce_org, capsys)
    assert code == 2 and "env ACME_SF_TOKEN" in err and "expired-session" not in err
