"""The tenants TOML format: ``[[tenant]]`` tables with a connection's fields, one per tenant.

It is how tenants move in and out of the registry (``crm-pipeline tenants import|export``), how
the demo describes its tenants, and what a deployment from before the registry keeps its tenants
in (``CRM_PIPELINE_TENANTS_FILE``). A stored token travels as ``token_encrypted``: encrypted with
the deployment's key, never in clear.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

from crm_pipeline.tenants.connection import TenantConnection


def parse_tenants(document: str) -> list[TenantConnection]:
    """The ``[[tenant]]`` tables of a TOML document, in order."""
    return [TenantConnection.model_validate(entry) for entry in tomllib.loads(document).get("tenant", [])]


def read_tenants_file(path: Path) -> list[TenantConnection]:
    return parse_tenants(path.read_text(encoding="utf-8"))


def tenant_toml(tenant: TenantConnection) -> str:
    """One ``[[tenant]]`` table of the file (JSON strings are valid TOML basic strings)."""
    lines = ["[[tenant]]"]
    for name, value in tenant.model_dump(exclude_none=True).items():
        lines.append(f"{name} = {json.dumps(value)}")
    return "\n".join(lines)


def tenants_toml(tenants: Sequence[TenantConnection]) -> str:
    return "\n\n".join(tenant_toml(tenant) for tenant in tenants) + "\n"


def save_tenants(path: Path, tenants: Sequence[TenantConnection]) -> None:
    """Write the file as ``[[tenant]]`` tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(tenants_toml(tenants), encoding="utf-8")
