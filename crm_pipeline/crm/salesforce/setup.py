"""What a Salesforce adapter sets up before its first read or write, and keeps across processes:
the client behind the paced caller, the org's Opportunity fields checked against the field map
(describe), our stages bound to the org's ``OpportunityStage`` values with their default
probabilities, and the integration user's id (whose edits are the sync's own), as the
``SalesforceDiscovery`` a later process reuses. The deal reads (deal_reads.py), contacts and
activities (activities.py) and the deal writes (adapter.py) build on this base."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from pydantic import SecretStr
from simple_salesforce.exceptions import SalesforceRefusedRequest

from crm_pipeline.crm.adapter import CRMAdapter, Discovery, discovery_basis
from crm_pipeline.crm.errors import FieldMappingError, PropertySchemaError
from crm_pipeline.crm.retrying import token_digest
from crm_pipeline.crm.salesforce.api import Record, SalesforceAPI
from crm_pipeline.crm.salesforce.client import RateLimit, RetryPolicy, SalesforceCaller, connect
from crm_pipeline.crm.salesforce.errors import SessionExpiredError, StageConfigError
from crm_pipeline.crm.salesforce.mapping import (
    DEFAULT_STAGE_NAMES,
    SALESFORCE_FIELD_MAP,
    SYNC_KEY_FIELD,
    SalesforceField,
    encode,
    soql_text,
)

API_VERSION = "62.0"
OPPORTUNITY = "Opportunity"
USER_PREFIX = "005"
USER_ID_LENGTH = 18
CHANGE_OVERLAP = timedelta(minutes=5)
"""How far before its cursor a change read starts by default: rows commit after their stamp."""
"""User ids as the API prints them (and as the audit fields compared with it hold them)."""


class SalesforceDiscovery(Discovery):
    """What a Salesforce adapter asks before it can read or write: our stages' ``ApiName`` values,
    each stage's default probability (percent), and the integration user's id."""

    stage_names: dict[str, str]
    default_probabilities: dict[str, int]
    integration_user_id: str


class SalesforceSetup(CRMAdapter):
    """The adapter's configuration and lazy set-up: client, describe, stages, integration user."""

    def __init__(
        self,
        token: str | SecretStr,
        *,
        instance_url: str,
        tenant_id: str = "default",
        token_ref: str = "the tenant's configured token",
        integration_username: str | None = None,
        field_map: Mapping[str, SalesforceField] = SALESFORCE_FIELD_MAP,
        stage_names: Mapping[str, str] = DEFAULT_STAGE_NAMES,
        retry: RetryPolicy | None = None,
        rate_limit: RateLimit | None = None,
        overlap: timedelta = CHANGE_OVERLAP,
        page_rows: int = 2000,
        version: str = API_VERSION,
        timeout_s: float = 30.0,
        on_request: Callable[[], None] | None = None,
    ) -> None:
        secret = token if isinstance(token, SecretStr) else SecretStr(token)
        instance_url = instance_url.rstrip("/")
        self.api = SalesforceAPI(
            SalesforceCaller(
                functools.partial(connect, instance_url, secret.get_secret_value(), version, timeout_s),
                token_digest(secret.get_secret_value()),
                token_ref,
                retry or RetryPolicy(),
                rate_limit or RateLimit(),
                on_request,
            )
        )
        self.instance_url = instance_url
        self.tenant_id = tenant_id
        self.integration_username = integration_username
        self.field_map = dict(field_map)
        self.stage_table = dict(stage_names)
        self.overlap = overlap
        self.page_rows = page_rows
        self.read_errors: list[FieldMappingError] = []
        self._discovered: SalesforceDiscovery | None = None
        self._asked = False
        """Whether the schema was asked for in this process (not reused)."""
        self._basis = discovery_basis(
            {
                "instance_url": instance_url,
                "user": integration_username,
                "fields": {f: [s.name, s.codec] for f, s in self.field_map.items()},
                "stages": self.stage_table,
            }
        )
        self._id_by_key: dict[str, str] = {}
        self._ready = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SalesforceAdapter(instance_url={self.instance_url!r}, tenant_id={self.tenant_id!r})"

    @property
    def mapped_fields(self) -> frozenset[str]:
        return frozenset(self.field_map)

    @property
    def requests_sent(self) -> int:
        """HTTP requests this adapter has sent, retries included."""
        return self.api.caller.requests_sent

    async def aclose(self) -> None:
        self.api.close()

    # --- discovery ------------------------------------------------------------------------------

    async def _setup(self) -> SalesforceDiscovery:
        async with self._ready:
            if self._discovered is None:
                await self._ask()
            assert self._discovered is not None
            return self._discovered

    async def _ask(self) -> None:
        self._discovered = None
        problems, found = await self._inspect()
        if problems:
            raise problems[0]
        self._discovered = found
        self._asked = True

    def discovery(self) -> SalesforceDiscovery | None:
        return self._discovered

    def reuse_discovery(self, discovery: Mapping[str, Any]) -> bool:
        found = SalesforceDiscovery.reusable(discovery, self._basis)
        if found is None:
            return False
        self._discovered, self._asked = found, False
        return True

    async def rediscover(self, *, everything: bool) -> None:
        """Describe, stages and user asked again when reused from an earlier process (or
        ``everything``): a field gone or changed is a ``PropertySchemaError``, a stage gone a
        ``StageConfigError``."""
        async with self._ready:
            if self._discovered is not None and (everything or not self._asked):
                await self._ask()

    async def verify(self) -> list[Exception]:
        """Every problem of the org's set-up for this adapter, each named (empty: it fits)."""
        problems, _ = await self._inspect()
        return problems

    async def _inspect(self) -> tuple[list[Exception], SalesforceDiscovery | None]:
        described = await self.api.describe(OPPORTUNITY)
        fields = {f["name"]: f for f in described.get("fields", [])}
        problems: list[Exception] = [*_field_problems(fields, self.field_map)]
        stages = {s["ApiName"]: s for s in await self.api.query(_STAGES) if s.get("IsActive", True)}
        by_label = {str(s.get("MasterLabel", "")).casefold(): name for name, s in stages.items()}
        bound: dict[str, str] = {}
        for ours, theirs in self.stage_table.items():
            name = theirs if theirs in stages else by_label.get(theirs.casefold())
            if name is None:
                problems.append(StageConfigError(f"the org has no active Opportunity stage {theirs!r} (for {ours!r})"))
            else:
                bound[ours] = name
        user_id = await self._integration_user()
        if isinstance(user_id, Exception):
            problems.append(user_id)
        if problems or isinstance(user_id, Exception):
            return problems, None
        defaults = {name: int(Decimal(str(s.get("DefaultProbability") or 0))) for name, s in stages.items()}
        return [], SalesforceDiscovery(
            basis=self._basis, stage_names=bound, default_probabilities=defaults, integration_user_id=user_id
        )

    async def _integration_user(self) -> str | PropertySchemaError:
        """The user the token acts as: by ``integration_username`` when given, else by OAuth user
        info (``GET /services/oauth2/userinfo`` on the instance, the same bearer token). Only its
        ``user_id`` is relied on: the 18-character id Salesforce stamps the token's writes with
        (``CreatedById``, ``LastModifiedById``). User info refuses a dead token with 403, not the
        data API's 401, so that refusal is the expired session too."""
        if self.integration_username is not None:
            rows = await self.api.query(f"SELECT Id FROM User WHERE Username = {soql_text(self.integration_username)}")
            if not rows:
                return PropertySchemaError("-", "User.Username", f"no user {self.integration_username!r} in the org")
            return str(rows[0]["Id"])
        try:
            info = await self.api.caller.call(lambda sf: sf.oauth2("userinfo"))
        except SalesforceRefusedRequest as error:
            raise SessionExpiredError(self.api.caller.token_ref) from error
        user_id = info.get("user_id") if isinstance(info, Mapping) else None
        if not (isinstance(user_id, str) and len(user_id) == USER_ID_LENGTH and user_id.startswith(USER_PREFIX)):
            return PropertySchemaError(
                "-",
                "userinfo.user_id",
                f"OAuth user info names no user ({user_id!r}): configure the integration username",
            )
        return user_id

    def _values(self, values: Mapping[str, Any], record_id: str | None) -> dict[str, Any]:
        """The Opportunity fields of deal values (only the mapped ones given)."""
        assert self._discovered is not None
        stages = self._discovered.stage_names
        return {
            spec.name: encode(values[field], field, spec, stages, record_id)
            for field, spec in self.field_map.items()
            if field in values
        }


_STAGES = "SELECT ApiName, MasterLabel, DefaultProbability, IsActive FROM OpportunityStage"


def _field_problems(fields: Mapping[str, Record], field_map: Mapping[str, SalesforceField]) -> list[Exception]:
    problems: list[Exception] = []
    key = fields.get(SYNC_KEY_FIELD)
    if key is None:
        problems.append(PropertySchemaError("sync_key", SYNC_KEY_FIELD, "Opportunity has no such field"))
    elif not (key.get("externalId") and key.get("unique")):
        problems.append(
            PropertySchemaError("sync_key", SYNC_KEY_FIELD, "must be an External ID and Unique, so upserts key on it")
        )
    for field, spec in field_map.items():
        found = fields.get(spec.name)
        if found is None:
            problems.append(PropertySchemaError(field, spec.name, "Opportunity has no such field"))
        elif found.get("type") not in spec.types:
            problems.append(PropertySchemaError(field, spec.name, f"is a {found.get('type')} field"))
        elif not (found.get("createable", True) and found.get("updateable", True)):
            problems.append(PropertySchemaError(field, spec.name, "the integration user cannot write it"))
    return problems
