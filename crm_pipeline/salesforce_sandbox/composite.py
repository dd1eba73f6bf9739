"""sObject Collections (``composite/sobjects``): create, update, upsert by external id and delete
up to 200 records in one call (one API request), or retrieve up to 2,000 by id. A malformed request
is a 400; otherwise each record gets its own result in request order, errors keyed ``statusCode``.
With ``allOrNone`` one failure rolls every write back: the culprits keep their errors, the others
report ALL_OR_NONE_OPERATION_ROLLED_BACK."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ROLLED_BACK, SalesforceError, bad_request, entity_is_deleted, malformed_id
from .ids import normal_id
from .runtime import Call
from .schema import PREFIXES, WRITABLE_OBJECTS
from .sobjects import external_id_field, fields_json, object_of, saved, upsert_one

MAX_RECORDS = 200
MAX_RETRIEVE = 2000
_OBJECTS_BY_PREFIX = {prefix: name for name, prefix in PREFIXES.items()}


class _RollBack(Exception):
    """Raised inside an all-or-none transaction to undo it."""


def create_many(call: Call) -> Any:
    def write(item: dict[str, Any]) -> dict[str, Any]:
        object_name = _type_of(call, item)
        if any(key.lower() == "id" for key in item):
            raise bad_request("INVALID_FIELD", "A record to create cannot have an id.", ["Id"])
        record = call.org.create(object_name, item, call.user_id)
        call.org.after_api_write(record)
        return saved(record)

    return _each(call, _records(call), write)


def update_many(call: Call) -> Any:
    def write(item: dict[str, Any]) -> dict[str, Any]:
        object_name = _type_of(call, item)
        record = call.org.get(object_name, _key_of(item, "Id") or "", deleted_ok=True)
        call.org.update(record, {k: v for k, v in item.items() if k.lower() != "id"}, call.user_id)
        call.org.after_api_write(record)
        return saved(record)

    return _each(call, _records(call), write)


def upsert_many(call: Call) -> Any:
    object_name = object_of(call, writing=True)
    spec = external_id_field(call, object_name, call.params["field"])

    records = _records(call)
    keys = [_key_of(item, spec.name) for item in records]
    repeated = {key.lower() for key in keys if key and sum(k.lower() == key.lower() for k in keys if k) > 1}

    def write(item: dict[str, Any]) -> dict[str, Any]:
        if _type_of(call, item) != object_name:
            raise bad_request("INVALID_TYPE", f"Every record must be a {object_name}.", [])
        key = _key_of(item, spec.name)
        if not key:
            raise bad_request("MISSING_ARGUMENT", f"{spec.name} not specified", [spec.name])
        if key.lower() in repeated:
            raise bad_request("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {key}", [spec.name])
        body = {k: v for k, v in item.items() if k.lower() != spec.name.lower()}
        try:
            return upsert_one(call, object_name, spec, key, body)[1]
        except SalesforceError as error:
            if error.status != 300:
                raise
            message = f"More than one record found for external id field {spec.name}: {key}"
            raise bad_request("DUPLICATE_EXTERNAL_ID", message, [spec.name]) from None

    return _each(call, records, write)


def _key_of(item: Any, field: str) -> str | None:
    key = next((v for k, v in item.items() if k.lower() == field.lower()), None) if isinstance(item, dict) else None
    return key if isinstance(key, str) and key else None


def delete_many(call: Call) -> Any:
    ids = [raw for raw in call.query.get("ids", "").split(",") if raw]
    if not 0 < len(ids) <= MAX_RECORDS:
        raise _too_many() if ids else bad_request("MISSING_ARGUMENT", "ids not specified")

    def write(raw_id: str) -> dict[str, Any]:
        record_id = normal_id(raw_id)
        if record_id is None:
            raise malformed_id(raw_id)
        object_name = _OBJECTS_BY_PREFIX.get(record_id[:3], "")
        record = call.org.state.records[object_name].get(record_id) if object_name in WRITABLE_OBJECTS else None
        if record is None or record.deleted:
            raise entity_is_deleted()
        call.org.delete(record)
        return saved(record)

    all_or_none = call.query.get("allOrNone", "false").lower() == "true"
    return _run(call, ids, write, all_or_none, [normal_id(raw) or raw for raw in ids])


def retrieve_many(call: Call) -> Any:
    object_name = object_of(call)
    ids = [raw for raw in call.query.get("ids", "").split(",") if raw]
    if not 0 < len(ids) <= MAX_RETRIEVE:
        raise bad_request("MISSING_ARGUMENT", f"ids: from 1 to {MAX_RETRIEVE} record ids")
    results: list[Any] = []
    for raw in ids:
        record_id = normal_id(raw)
        record = call.org.state.records[object_name].get(record_id) if record_id else None
        results.append(
            None if record is None or record.deleted else fields_json(call, record, call.query.get("fields"))
        )
    return results


# --- shared ---------------------------------------------------------------------------------------


def _too_many() -> SalesforceError:
    return bad_request(
        "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
    )


def _records(call: Call) -> list[Any]:
    body = call.body
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise bad_request("JSON_PARSER_ERROR", "The body is an object with a list of records.")
    if len(body["records"]) > MAX_RECORDS:
        raise _too_many()
    return list(body["records"])


def _type_of(call: Call, item: Any) -> str:
    """The writable object a record's ``attributes.type`` names."""
    if not isinstance(item, dict):
        raise bad_request("JSON_PARSER_ERROR", "Each record is an object.", [])
    attributes = item.pop("attributes", None)
    kind = attributes.get("type") if isinstance(attributes, dict) else None
    name = call.org.schema.object_name(str(kind)) if kind else None
    if name is None or name not in WRITABLE_OBJECTS:
        raise bad_request("INVALID_TYPE", "Each record needs attributes.type naming an object that can be written.", [])
    return name


def _each(call: Call, items: list[Any], write: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    all_or_none = call.body.get("allOrNone") is True
    given = [_key_of(item, "Id") for item in items]
    return _run(call, items, write, all_or_none, [normal_id(raw) or raw if raw else None for raw in given])


def _run(
    call: Call, items: list[Any], write: Callable[[Any], dict[str, Any]], all_or_none: bool, ids: list[str | None]
) -> list[dict[str, Any]]:
    """Each item written on its own; with ``all_or_none``, all of them or none."""
    results: list[dict[str, Any]] = []

    def run_all() -> None:
        for item, record_id in zip(items, ids, strict=True):
            try:
                results.append(write(item))
            except SalesforceError as error:
                failed: dict[str, Any] = {"id": record_id} if record_id else {}
                results.append({**failed, "success": False, "errors": [error.record_error()]})

    if not all_or_none:
        run_all()
        return results
    try:
        with call.org.transaction():
            run_all()
            if not all(result["success"] for result in results):
                raise _RollBack
    except _RollBack:
        rolled_back = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": ROLLED_BACK, "fields": []}
        return [
            r if not r["success"] else {**({"id": i} if i else {}), "success": False, "errors": [rolled_back]}
            for r, i in zip(results, ids, strict=True)
        ]
    return results
