"""docs/deploy.md's instance settings are valid Dagster instance config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config

from crm_pipeline.defs.schedules import INTEGRATION_TAG
from crm_pipeline.settings import PROJECT_ROOT


def test_the_production_dagster_yaml_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = re.findall(r"```yaml\n(.*?)```", (PROJECT_ROOT / "docs" / "deploy.md").read_text(), flags=re.DOTALL)
    config = yaml.safe_load(block)
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
