"""The single-record sObject routes (create, read, update, delete, read and upsert by external
id), describe, the versions list and ``limits/``. Each handler turns a ``Call`` into a body, or a
status and a body."""

from __future__ import annotations

from typing import Any

from .errors import SalesforceError, bad_request, invalid_field, no_external_id_field, not_found
from .render import record_json
from .runtime import VERSIONS, Call
from .schema import WRITABLE_OBJECTS, FieldSpec
from .state import Record


def object_of(call: Call, raw: str | None = None, *, writing: bool = False) -> str:
    """The canonical object name a path names; 404 for objects the org does not serve (or, for
    writes, does not let the API write)."""
    name = call.org.schema.object_name(raw if raw is not None else call.params["object"])
    if name is None or (writing and name not in WRITABLE_OBJECTS):
        raise not_found()
    return name


def fields_json(call: Call, record: Record, wanted: str | None) -> dict[str, Any]:
    """The record printed, with every visible field or the comma-separated ``wanted`` ones."""
    values = call.org.visible(record)
    if wanted:
        names = []
        for raw in wanted.split(","):
            spec = call.org.schema.field(record.object_name, raw.strip())
            if spec is None:
                raise invalid_field(raw.strip(), record.object_name)
            names.append(spec.name)
        values = {name: values[name] for name in dict.fromkeys(names)}
    return record_json(record.object_name, values, call.version, record.id)


def saved(record: Record, created: bool | None = None) -> dict[str, Any]:
    """A write's result: ``{id, success, errors}`` and, for upserts, ``created``."""
    result: dict[str, Any] = {"id": record.id, "success": True, "errors": []}
    if created is not None:
        result["created"] = created
    return result


# --- the org and its objects ----------------------------------------------------------------------


def versions() -> list[dict[str, str]]:
    return [{"label": label, "url": f"/services/data/v{v}", "version": v} for v, label in VERSIONS.items()]


def limits(call: Call) -> Any:
    daily = call.sandbox.daily
    return {
        "DailyApiRequests": {"Max": daily.limit, "Remaining": daily.remaining("org")},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
    }


def describe_global(call: Call) -> Any:
    sobjects = []
    for name in call.org.schema.fields:
        described = call.org.schema.describe(name, call.version)
        sobjects.append({key: value for key, value in described.items() if key != "fields"})
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}


def describe(call: Call) -> Any:
    return call.org.schema.describe(object_of(call), call.version)


def basic_info(call: Call) -> Any:
    described = call.org.schema.describe(object_of(call), call.version)
    return {"objectDescribe": {k: v for k, v in described.items() if k != "fields"}, "recentItems": []}


# --- one record -----------------------------------------------------------------------------------


def create(call: Call) -> Any:
    record = call.org.create(object_of(call, writing=True), call.body, call.user_id)
    call.org.after_api_write(record)
    return 201, saved(record)


def read(call: Call) -> Any:
    record = call.org.get(object_of(call), call.params["record_id"])
    return fields_json(call, record, call.query.get("fields"))


def update(call: Call) -> Any:
    record = _existing(call, object_of(call, writing=True), call.params["record_id"])
    call.org.update(record, call.body, call.user_id)
    call.org.after_api_write(record)
    return 204, None


def delete(call: Call) -> Any:
    call.org.delete(_existing(call, object_of(call, writing=True), call.params["record_id"]))
    return 204, None


def _existing(call: Call, object_name: str, raw_id: str) -> Record:
    """The record a write names, in the Recycle Bin too (its write is refused with ENTITY_IS_DELETED)."""
    return call.org.get(object_name, raw_id, deleted_ok=True)


# --- by external id -------------------------------------------------------------------------------


def external_id_field(call: Call, object_name: str, raw: str) -> FieldSpec:
    spec = call.org.schema.field(object_name, raw)
    if spec is None or not spec.external_id:
        raise no_external_id_field(raw)
    return spec


def _several(call: Call, matches: list[Record]) -> SalesforceError:
    """HTTP 300: the records a key matches, as their urls."""
    urls = [f"{call.base()}/sobjects/{r.object_name}/{r.id}" for r in matches]
    return SalesforceError(300, "MULTIPLE_CHOICES", "More than one record matches the external id", payload=urls)


def read_by_key(call: Call) -> Any:
    object_name = object_of(call)
    external_id_field(call, object_name, call.params["field"])
    matches = call.org.by_key(call.params["value"])
    if not matches:
        raise not_found()
    if len(matches) > 1:
        raise _several(call, matches)
    return fields_json(call, matches[0], call.query.get("fields"))


def upsert(call: Call) -> Any:
    object_name = object_of(call, writing=True)
    spec = external_id_field(call, object_name, call.params["field"])
    return upsert_one(call, object_name, spec, call.params["value"], call.body)


def upsert_one(call: Call, object_name: str, spec: FieldSpec, key: str, body: Any) -> tuple[int, dict[str, Any]]:
    """Create the record holding ``key`` (201) or update the one that does (200); several: 300."""
    if not isinstance(body, dict):
        raise bad_request("JSON_PARSER_ERROR", "The body of an upsert is an object of fields.")
    for name in body:
        if name.lower() in ("id", spec.name.lower()):
            message = f"{name} is not allowed in the body: the record is named by {spec.name} in the URL."
            raise bad_request("INVALID_FIELD", message, [name])
    matches = call.org.by_key(key)
    if len(matches) > 1:
        raise _several(call, matches)
    if matches:
        record = call.org.update(matches[0], body, call.user_id)
        call.org.after_api_write(record)
        return 200, saved(record, created=False)
    record = call.org.create(object_name, {**body, spec.name: key}, call.user_id)
    call.org.after_api_write(record)
    return 201, saved(record, created=True)
