"""docs/deploy.md's instance settings are valid Dagster instance config, and its run launchers load."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from crm_pipeline.celery_launcher import WorkerAwareCeleryRunLauncher
from crm_pipeline.defs.schedules import INTEGRATION_TAG
from crm_pipeline.dev import write_instance_config
from crm_pipeline.settings import PROJECT_ROOT
from crm_pipeline.workers import BROKER_VARIABLE, instance_settings


def blocks() -> dict[str, dict[str, Any]]:
    """The doc's YAML blocks by what they configure: the production instance, the Celery
    launcher, the Kubernetes launcher."""
    found = re.findall(r"```yaml\n(.*?)```", (PROJECT_ROOT / "docs" / "deploy.md").read_text(), flags=re.DOTALL)
    parsed = [yaml.safe_load(block) for block in found]
    by_kind = {("instance" if "storage" in block else block["run_launcher"]["class"]): block for block in parsed}
    assert len(by_kind) == len(parsed) == 3, list(by_kind)
    return by_kind


def test_the_production_dagster_yaml_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = blocks()["instance"]
    # The launcher names a package crm_pipeline does not depend on (dagster-docker): its module
    # cannot be loaded here, so only its name is checked.
    launcher = config.pop("run_launcher")
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql+psycopg2://dagster:secret@db.example:5432/crm")
    validated, _ = dagster_instance_config(str(tmp_path))
    [limit] = validated["concurrency"]["runs"]["tag_concurrency_limits"]
    assert limit["key"] == INTEGRATION_TAG and limit["limit"] == 1
    assert validated["run_monitoring"]["enabled"] is True


def test_the_celery_launcher_block_is_what_crm_pipeline_dev_adds_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `crm-pipeline dev` writes with a broker set is the checkout's dagster.yaml with the
    documented block: an instance whose launcher sends runs to Celery workers and resumes them
    (run monitoring's resume attempts set, which the checkout's default launcher refuses)."""
    block = blocks()["WorkerAwareCeleryRunLauncher"]
    assert block == yaml.safe_load(instance_settings())
    write_instance_config(tmp_path, celery=True)
    written = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    del written["storage"]  # the deal store's PostgreSQL: SQLite in the test's folder instead
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(written))
    monkeypatch.setenv(BROKER_VARIABLE, "redis://:secret@broker.example:6379/0")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, WorkerAwareCeleryRunLauncher)
        assert launcher.supports_check_run_worker_health and launcher.supports_resume_run
        assert launcher.broker == launcher.backend == "redis://:secret@broker.example:6379/0"
        assert instance.run_monitoring_max_resume_run_attempts == 2


def test_the_kubernetes_launcher_block_validates_against_dagster_k8s() -> None:
    """The Kubernetes alternative's launcher config, checked by Dagster's config validation
    against dagster-k8s's own schema (making the launcher would need a cluster's credentials)."""
    from dagster._config import process_config, resolve_to_config_type
    from dagster_k8s import K8sRunLauncher

    launcher = blocks()["K8sRunLauncher"]["run_launcher"]
    assert launcher["module"] == "dagster_k8s"
    result = process_config(resolve_to_config_type(K8sRunLauncher.config_type()), launcher["config"])
    assert result.success, result.errors
    assert result.value is not None and result.value["job_namespace"] == "crm-pipeline"
