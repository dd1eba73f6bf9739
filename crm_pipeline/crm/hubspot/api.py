"""``HubSpotAPI``: one typed method per HubSpot endpoint the adapter uses, over ``hubspot-api-client``.

Every call goes through ``HubSpotCaller`` (pacing + retries). The SDK's models are turned here
into small frozen records (``HubSpotObject``, ``BatchResult``) holding what the adapter reads, so
the adapter never touches SDK models and a 207's per-record errors are data, not exceptions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from crm_pipeline.crm.hubspot.client import HubSpotCaller

T = TypeVar("T")
MAX_BATCH = 100
MAX_BATCH_WITH_HISTORY = 50
MAX_SEARCH_PAGE = 200
MAX_LIST_PAGE = 100
NOTE_TO_DEAL = 214
_OBJECT_APIS = {"deals": "crm.deals", "contacts": "crm.contacts", "notes": "crm.objects.notes"}


@dataclass(frozen=True)
class Version:
    """One value a property held: when, and who wrote it (``sourceType`` ``CRM_UI`` is a person)."""

    value: str
    timestamp: datetime
    source_type: str
    source_id: str | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class HubSpotObject:
    id: str
    properties: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    archived_at: datetime | None = None
    history: dict[str, list[Version]] = field(default_factory=dict)  # newest first
    new: bool | None = None  # upserts: whether the record was created


@dataclass(frozen=True)
class BatchError:
    """One failure in a 207: the inputs it concerns (ids or trace ids) and why."""

    category: str
    message: str
    ids: tuple[str, ...]
    property_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchResult:
    results: list[HubSpotObject]
    errors: list[BatchError]


@dataclass(frozen=True)
class Page:
    results: list[HubSpotObject]
    after: str | None
    total: int | None = None


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


def _object(model: Any) -> HubSpotObject:
    history = {
        name: [
            Version(
                v.value or "", _utc(v.timestamp) or datetime.min, v.source_type or "", v.source_id, v.updated_by_user_id
            )
            for v in versions or []
        ]
        for name, versions in (getattr(model, "properties_with_history", None) or {}).items()
    }
    return HubSpotObject(
        id=str(model.id),
        properties=dict(model.properties or {}),
        created_at=_utc(model.created_at) or datetime.min,
        updated_at=_utc(model.updated_at) or datetime.min,
        archived=bool(model.archived),
        archived_at=_utc(getattr(model, "archived_at", None)),
        history=history,
        new=getattr(model, "new", None),
    )


def _batch(answer: Any) -> BatchResult:
    errors = []
    for error in getattr(answer, "errors", None) or []:
        context = error.context or {}
        ids = tuple(context.get("ids") or ()) + tuple(context.get("objectWriteTraceId") or ())
        names = tuple(name for detail in error.errors or [] for name in (detail.context or {}).get("propertyName", []))
        errors.append(BatchError(error.category or "", error.message or "", ids, names))
    return BatchResult([_object(r) for r in answer.results or []], errors)


def _page(answer: Any) -> Page:
    after = answer.paging.next.after if answer.paging and answer.paging.next else None
    return Page([_object(r) for r in answer.results or []], after, getattr(answer, "total", None))


class HubSpotAPI:
    """Typed HubSpot endpoints for one object type's records, and the schema they need."""

    def __init__(self, sdk: Any, caller: HubSpotCaller, timeout_s: float) -> None:
        self.sdk = sdk
        self.caller = caller
        self.timeout_s = timeout_s
        self._apis: dict[str, Any] = {}

    def _api(self, path: str) -> Any:
        """The SDK's API object at ``path`` (``"crm.deals.batch_api"``), built once: the SDK builds a
        new client (and connection pool) on every attribute access, so connections would never be
        reused."""
        if path not in self._apis:
            api = self.sdk
            for name in path.split("."):
                api = getattr(api, name)
            self._apis[path] = api
        return self._apis[path]

    def close(self) -> None:
        """Close every client's connections; a later call builds new clients."""
        for api in self._apis.values():
            api.api_client.rest_client.pool_manager.clear()
            api.api_client.close()
        self._apis.clear()

    def _objects(self, object_type: str, kind: str) -> Any:
        return self._api(f"{_OBJECT_APIS[object_type]}.{kind}")

    def _models(self, object_type: str) -> Any:
        import hubspot.crm.contacts
        import hubspot.crm.deals
        import hubspot.crm.objects.notes

        return {"deals": hubspot.crm.deals, "contacts": hubspot.crm.contacts, "notes": hubspot.crm.objects.notes}[
            object_type
        ]

    async def _call(self, send: Callable[[], T], **options: Any) -> T:
        return await self.caller.call(send, **options)

    # --- schema ---------------------------------------------------------------------------------

    async def pipelines(self) -> list[tuple[str, str, list[tuple[str, str]]]]:
        """Deal pipelines as (id, label, [(stage id, stage label)])."""
        api = self._api("crm.pipelines.pipelines_api")
        answer = await self._call(partial(api.get_all, "deals", _request_timeout=self.timeout_s))
        return [(p.id, p.label, [(s.id, s.label) for s in p.stages or []]) for p in answer.results or []]

    async def properties(self, object_type: str) -> dict[str, dict[str, Any]]:
        """Each property's ``type``, ``hasUniqueValue``, whether it is read-only and its option
        values, by name."""
        api = self._api("crm.properties.core_api")
        answer = await self._call(partial(api.get_all, object_type, _request_timeout=self.timeout_s))
        return {
            p.name: {
                "type": p.type,
                "unique": bool(p.has_unique_value),
                "read_only": bool(p.modification_metadata and p.modification_metadata.read_only_value),
                "options": [o.value for o in p.options or []],
            }
            for p in answer.results or []
        }

    async def create_property(
        self, object_type: str, name: str, label: str, kind: str, field_type: str, unique: bool
    ) -> None:
        from hubspot.crm.properties import PropertyCreate

        body = PropertyCreate(
            name=name,
            label=label,
            type=kind,
            field_type=field_type,
            group_name="dealinformation",
            has_unique_value=unique,
        )
        api = self._api("crm.properties.core_api")
        await self._call(partial(api.create, object_type, body, _request_timeout=self.timeout_s))

    async def set_options(self, object_type: str, name: str, values: Sequence[str]) -> None:
        """Replace an enumeration property's options (each value its own label)."""
        from hubspot.crm.properties import OptionInput, PropertyUpdate

        options = [OptionInput(label=v, value=v, display_order=i, hidden=False) for i, v in enumerate(values)]
        body = PropertyUpdate(options=options)
        api = self._api("crm.properties.core_api")
        await self._call(partial(api.update, object_type, name, body, _request_timeout=self.timeout_s))

    # --- records --------------------------------------------------------------------------------

    async def batch_upsert(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, dict[str, str]]]
    ) -> BatchResult:
        """Create or update by a unique property, up to 100 at once. Keyed, so a resend after a
        lost answer writes the same records again and creates nothing twice."""
        models = self._models(object_type)
        body = models.BatchInputSimplePublicObjectBatchInputUpsert(
            inputs=[
                models.SimplePublicObjectBatchInputUpsert(id=key, id_property=id_property, properties=properties)
                for key, properties in inputs
            ]
        )
        api = self._objects(object_type, "batch_api")
        return _batch(await self._call(lambda: api.upsert(body, _request_timeout=self.timeout_s)))

    async def batch_update(
        self,
        object_type: str,
        inputs: Sequence[tuple[str, dict[str, str]]],
        *,
        recover: Callable[[], Awaitable[BatchResult | None]] | None = None,
    ) -> BatchResult:
        """Partial updates by id, up to 100 at once; never resent blindly (a person may have
        edited the record meanwhile): after a lost answer only ``recover`` decides."""
        models = self._models(object_type)
        body = models.BatchInputSimplePublicObjectBatchInput(
            inputs=[models.SimplePublicObjectBatchInput(id=i, properties=properties) for i, properties in inputs]
        )
        api = self._objects(object_type, "batch_api")
        return _batch(
            await self._call(
                lambda: api.update(body, _request_timeout=self.timeout_s), idempotent=False, recover=recover
            )
        )

    async def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        properties: Sequence[str],
        *,
        history: Sequence[str] = (),
        archived: bool = False,
        id_property: str | None = None,
    ) -> BatchResult:
        """Up to 100 records by id (50 with history); missing ids come back as an error."""
        models = self._models(object_type)
        body = models.BatchReadInputSimplePublicObjectId(
            inputs=[models.SimplePublicObjectId(id=i) for i in ids],
            properties=list(properties),
            properties_with_history=list(history),
            id_property=id_property,
        )
        api = self._objects(object_type, "batch_api")
        return _batch(await self._call(lambda: api.read(body, archived=archived, _request_timeout=self.timeout_s)))

    async def search(self, object_type: str, body: dict[str, Any]) -> Page:
        models = self._models(object_type)
        request = models.PublicObjectSearchRequest(**body)
        api = self._objects(object_type, "search_api")
        return _page(await self._call(lambda: api.do_search(request, _request_timeout=self.timeout_s), search=True))

    async def list_page(
        self, object_type: str, properties: Sequence[str], *, after: str | None, archived: bool = False
    ) -> Page:
        api = self._objects(object_type, "basic_api")
        return _page(
            await self._call(
                lambda: api.get_page(
                    limit=MAX_LIST_PAGE,
                    after=after,
                    properties=list(properties),
                    archived=archived,
                    _request_timeout=self.timeout_s,
                )
            )
        )

    async def archive(self, object_type: str, object_id: str) -> None:
        api = self._objects(object_type, "basic_api")
        await self._call(lambda: api.archive(object_id, _request_timeout=self.timeout_s))

    async def create(
        self,
        object_type: str,
        properties: dict[str, str],
        *,
        associations: Sequence[tuple[str, int]] = (),
        recover: Callable[[], Awaitable[HubSpotObject | None]] | None = None,
    ) -> HubSpotObject:
        """Create one record (linked at creation to ``(id, association type id)`` targets); not
        resent after a lost answer unless ``recover`` finds nothing."""
        models = self._models(object_type)
        body = models.SimplePublicObjectInputForCreate(
            properties=properties,
            associations=[
                {
                    "to": {"id": to_id},
                    "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
                }
                for to_id, type_id in associations
            ],
        )
        api = self._objects(object_type, "basic_api")
        created = await self._call(
            lambda: api.create(body, _request_timeout=self.timeout_s), idempotent=False, recover=recover
        )
        return created if isinstance(created, HubSpotObject) else _object(created)

    async def update(self, object_type: str, object_id: str, properties: dict[str, str]) -> HubSpotObject:
        models = self._models(object_type)
        api = self._objects(object_type, "basic_api")
        body = models.SimplePublicObjectInput(properties=properties)
        return _object(await self._call(lambda: api.update(object_id, body, _request_timeout=self.timeout_s)))

    async def associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """The default association between two records (v4; a PUT, so a resend changes nothing)."""
        api = self._api("crm.associations.v4.basic_api")
        await self._call(
            partial(api.create_default, from_type, from_id, to_type, to_id, _request_timeout=self.timeout_s)
        )

    async def associated_ids(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        """Ids of the records of ``to_type`` associated with one record (v4; up to 500 a page)."""
        api = self._api("crm.associations.v4.basic_api")
        ids: list[str] = []
        after: str | None = None
        while True:
            answer = await self._call(
                partial(
                    api.get_page, from_type, from_id, to_type, after=after, limit=500, _request_timeout=self.timeout_s
                )
            )
            ids += [str(r.to_object_id) for r in answer.results or []]
            if not (answer.paging and answer.paging.next):
                return ids
            after = answer.paging.next.after
