"""Settings from the environment (prefix ``CRM_PIPELINE_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The source checkout (with pyproject.toml, workspace.yaml, dagster.yaml) this package runs from."""


def project_file(name: str) -> Path:
    """A file of the checkout (workspace.yaml, dagster.yaml), or the copy an installed package
    carries (the wheel includes both)."""
    checkout = PROJECT_ROOT / name
    return checkout if checkout.is_file() else Path(str(resources.files("crm_pipeline") / name))


def _default_data_dir() -> Path:
    """`.crm_pipeline/` in the checkout; for an installed package, in the working directory."""
    base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / ".crm_pipeline"


class Settings(BaseSettings):
    """Everything configurable; each field is read from ``CRM_PIPELINE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="CRM_PIPELINE_", env_file=".env", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of an external PostgreSQL (e.g. postgresql://user:pw@host:5432/crm). "
            "Unset: an embedded PostgreSQL is started in `data_dir`. Its login role owns the deal store's "
            "tables: it runs the migrations and registers tenants."
        ),
    )
    app_database_url: SecretStr | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the same database for the application's login role, a member of "
            "crm_pipeline_app that is no superuser and does not own the tables; required with `database_url`. "
            "Unset with the embedded server: its own login role is created and used."
        ),
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Project-local state: the embedded PostgreSQL's data directory lives here.",
    )
    database_name: str = Field(default="crm_pipeline", description="Database created on the embedded server.")
    tenant_id: str = Field(default="demo", description="Tenant the pipeline syncs.")
    notion_token: SecretStr | None = Field(
        default=None,
        description="Notion integration token. Unset: `crm-pipeline dev` serves the local sandbox Notion.",
    )
    notion_database_id: str | None = Field(default=None, description="The Notion database holding the deals.")
    notion_data_source_id: str | None = Field(
        default=None, description="Which data source of the database, when it has several."
    )
    notion_base_url: str | None = Field(
        default=None, description="Notion API base URL (the sandbox's in development); unset: api.notion.com."
    )
    sandbox_port: int = Field(default=8765, description="Port `crm-pipeline dev` serves the sandbox Notion on.")
    hubspot_sandbox_port: int = Field(
        default=8766,
        description="Port `crm-pipeline dev` serves the local HubSpot on: a HubSpot tenant without a token uses it.",
    )
    salesforce_sandbox_port: int = Field(
        default=8767,
        description=(
            "Port `crm-pipeline dev` serves the local Salesforce on: a Salesforce tenant without a token uses it."
        ),
    )
    tenants_file: Path | None = Field(
        default=None,
        description=(
            "A TOML file of tenants the code location and `crm-pipeline sync` read instead of the tenant "
            "registry in the deal store (as before the registry). Unset: the registry (`crm-pipeline tenants`); "
            "while that is empty, the one tenant of these settings."
        ),
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Comma-separated Fernet keys, newest first, that encrypt the tokens stored in the tenant registry "
            "(`crm-pipeline tenants generate-key`, `rotate-key`)."
        ),
    )
    celery_broker: SecretStr | None = Field(
        default=None,
        description=(
            "Redis URL of the Celery broker and result backend. Set: Dagster's runs go to Celery workers on "
            "any host (`crm-pipeline worker`); unset: each run is a process on the daemon's machine."
        ),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
