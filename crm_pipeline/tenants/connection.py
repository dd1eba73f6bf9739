"""A tenant's connection to its external CRM, and where its token is found.

A connection names its connector (Notion, HubSpot or Salesforce), where the tenant's deals are in it
(a Notion database and data source, a HubSpot pipeline, a Salesforce org: its instance URL, the
connection's base URL), the API's base URL, whether the schedule syncs it,
and a reference to its token, never the token in clear: an environment variable (``token_env``), a
file such as a mounted Kubernetes or Docker secret (``token_file``), or the token encrypted with the
deployment's key (``token_encrypted``, see ``crm_pipeline.tenants.secrets``). Each kind is one
``TokenReference``; another kind (an OAuth token that refreshes) is another reference type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

TOKEN_ENV_DEFAULT = "CRM_PIPELINE_NOTION_TOKEN"
Connector = Literal["notion", "hubspot", "salesforce"]
TOKEN_ENV_DEFAULTS: dict[str, str] = {
    "notion": TOKEN_ENV_DEFAULT,
    "hubspot": "CRM_PIPELINE_HUBSPOT_TOKEN",
    "salesforce": "CRM_PIPELINE_SALESFORCE_TOKEN",
}
CONNECTOR_FIELDS: dict[str, frozenset[str]] = {
    "notion": frozenset({"database_id", "data_source_id"}),
    "hubspot": frozenset({"pipeline"}),
    "salesforce": frozenset({"integration_username"}),
}
"""The fields only one connector reads: set on a tenant of another connector, they are refused
(a HubSpot tenant with a Notion database id is a mistake, not something to ignore)."""
TOKEN_FIELDS = ("token_env", "token_file", "token_encrypted")
"""One of them says where the token is; none: the connector's default variable."""
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


@dataclass(frozen=True)
class EnvToken:
    """The token is the value of an environment variable (unset: the connector's local API)."""

    name: str

    def __str__(self) -> str:
        return f"env:{self.name}"


@dataclass(frozen=True)
class FileToken:
    """The token is a file's content, read at each use and stripped (a mounted secret rotates in place)."""

    path: str

    def __str__(self) -> str:
        return f"file:{self.path}"


@dataclass(frozen=True, repr=False)
class StoredToken:
    """The token is stored in the registry, encrypted with the deployment's key."""

    ciphertext: str

    def __str__(self) -> str:
        return "stored (encrypted)"

    def __repr__(self) -> str:
        return "StoredToken()"


TokenReference = EnvToken | FileToken | StoredToken


class TenantConnection(BaseModel, frozen=True):
    """One tenant's connection to its external CRM (no token in clear: only where it is found)."""

    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    connector: Connector = "notion"
    database_id: str | None = None
    """Notion: the database holding the tenant's deals (None: the sandbox's Deals database)."""
    data_source_id: str | None = None
    """Notion: which data source of the database, when it has several."""
    pipeline: str | None = None
    """HubSpot: the deal pipeline's id (None: the account's ``default`` pipeline)."""
    integration_username: str | None = None
    """Salesforce: the username the token acts as, whose edits are the sync's own (None: the
    token's OAuth identity, the local Salesforce's integration user without a token)."""
    token_env: str | None = Field(default=None, pattern=_ENV_NAME)
    """The environment variable holding the token (the connector's by default, when neither of the
    other references is given); unset there means the local API `crm-pipeline dev` serves: the
    sandbox Notion, the local HubSpot or the local Salesforce."""
    token_file: str | None = Field(default=None, pattern=r"^/")
    """A file holding the token (a mounted secret), read at each use: an absolute path, since
    every run reads it from a working directory of its own."""
    token_encrypted: str | None = Field(default=None, repr=False)
    """The token encrypted with the deployment's key (Fernet; ``crm-pipeline tenants add --token-stdin``)."""
    base_url: str | None = None
    """The API's base URL (None: the connector's public API, or its local API without a token).
    Salesforce: the org's instance URL (``https://acme.my.salesforce.com``), which a connection
    with a token needs (Salesforce has no one public API address); without a token the local
    Salesforce serves the tenant, never the org named here."""
    active: bool = True

    @model_validator(mode="before")
    @classmethod
    def _per_connector(cls, data: Any) -> Any:
        """The connector's token variable by default, one token reference at most, and none of
        another connector's fields."""
        if not isinstance(data, dict):
            return data
        connector = data.get("connector", "notion")
        if connector not in CONNECTOR_FIELDS:
            return data  # the Literal refuses it, naming the connectors there are
        foreign = sorted(
            name
            for other, names in CONNECTOR_FIELDS.items()
            if other != connector
            for name in names
            if data.get(name) is not None
        )
        if foreign:
            raise ValueError(f"a {connector} connection has no {', '.join(foreign)}")
        given = [name for name in TOKEN_FIELDS if data.get(name) is not None]
        if len(given) > 1:
            raise ValueError(f"a connection's token is found in one place, not {' and '.join(given)}")
        if not given:
            data = {**data, "token_env": TOKEN_ENV_DEFAULTS[connector]}
        return data

    @property
    def token(self) -> TokenReference:
        """Where the token is found."""
        if self.token_file is not None:
            return FileToken(self.token_file)
        if self.token_encrypted is not None:
            return StoredToken(self.token_encrypted)
        assert self.token_env is not None, "the validator names the connector's variable by default"
        return EnvToken(self.token_env)

    @property
    def integration(self) -> str:
        """What a rate budget is shared by: one integration (token) of one connector may serve
        several tenants, and each connector's API budgets its own integrations. A token of the
        tenant's own (a file, stored) is its own integration."""
        match self.token:
            case EnvToken(name):
                return f"{self.connector}:{name}"
            case FileToken(path):
                return f"{self.connector}:file:{path}"
            case StoredToken():
                return f"{self.connector}:tenant:{self.tenant_id}"

    def where(self) -> str:
        """Where the tenant's deals are, in its connector's terms."""
        if self.connector == "hubspot":
            return f"pipeline {self.pipeline or 'default'}"
        if self.connector == "salesforce":
            user = f" as {self.integration_username}" if self.integration_username else ""
            return f"org {self.base_url or '(local Salesforce)'}{user}"
        return self.database_id or "(sandbox)"
