"""`crm-pipeline worker`: dagster-celery's worker command on the instance's broker, or a plain refusal."""

from __future__ import annotations

import pytest

from crm_pipeline.cli import main
from crm_pipeline.settings import get_settings, project_file
from crm_pipeline.workers import BROKER_VARIABLE, worker_command


@pytest.fixture(autouse=True)
def fresh_settings() -> None:
    get_settings.cache_clear()


def test_a_worker_without_a_broker_or_an_instance_says_which_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BROKER_VARIABLE, raising=False)
    with pytest.raises(SystemExit, match=BROKER_VARIABLE):
        main(["worker"])
    get_settings.cache_clear()
    monkeypatch.setenv(BROKER_VARIABLE, "redis://:secret@broker.example:6379/0")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(SystemExit, match="DAGSTER_HOME"):
        main(["worker"])


def test_the_worker_is_dagster_celerys_with_the_checkouts_worker_config() -> None:
    command = worker_command("host-a", 3)
    assert command[1:5] == ["worker", "start", "-A", "dagster_celery.app"]
    assert command[command.index("-y") + 1] == str(project_file("celery-worker.yaml"))
    assert command[-3:] == ["host-a", "--", "--concurrency=3"]
