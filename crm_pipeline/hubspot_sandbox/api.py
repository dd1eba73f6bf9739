"""HubSpot's CRM routes: v3 objects (single, batch, search, merge), properties, pipelines, and v4
associations, for deals, contacts and notes. Each handler turns a `Call` into a body (or a status
and a body); `API_ROUTES` names the handlers of each path template."""

from __future__ import annotations

import functools
import uuid
from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.routes import emulator_of

from .errors import HubSpotError, not_found, validation
from .model import ASSOCIATION_TYPES, OBJECT_TYPES, Record, iso
from .portal import Portal
from .render import record_json, records_json
from .runtime import Call, Handler, HubSpotSandbox
from .search import search

MAX_BATCH = 100
MAX_BATCH_WITH_HISTORY = 50
MAX_LIST = 100
MAX_ASSOCIATIONS = 500


def _flag(call: Call, name: str) -> bool:
    return call.query.get(name, ["false"])[-1].lower() == "true"


def _names(call: Call, name: str) -> list[str]:
    return call.query.get(name, [])


def _type(call: Call, key: str = "object_type") -> str:
    return call.portal.object_type(call.params[key])


def _int(raw: str, name: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise validation(f"{name} must be an integer from {low} to {high}.")
    return int(raw)


def _inputs(body: Any, cap: int) -> list[dict[str, Any]]:
    inputs = body.get("inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise validation("inputs must be a list of objects.")
    if len(inputs) > cap:
        raise validation(f"The maximum number of inputs supported in a batch request is {cap}.")
    return inputs


def _batch(results: list[dict[str, Any]], errors: list[dict[str, Any]], ok_status: int, started: str) -> Any:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": started}
    if errors:
        body.update(numErrors=len(errors), errors=errors)
        return 207, body
    return ok_status, body


def _item_error(error: HubSpotError, context: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "status": "error",
        "category": error.category,
        "message": error.message,
        "context": context,
        "errors": error.errors,
    }


def _create_with_associations(portal: Portal, object_type: str, item: dict[str, Any]) -> Record:
    associations = item.get("associations") or []
    targets = []
    for link in associations:  # checked before the record is created: all or nothing
        to_id = str((link.get("to") or {}).get("id", ""))
        type_ids = [t.get("associationTypeId") for t in link.get("types") or []]
        to_type = next((t for (f, t), i in ASSOCIATION_TYPES.items() if f == object_type and i in type_ids), None)
        if to_type is None:
            raise validation(f"Association types {type_ids} do not start at {object_type}.")
        portal.get(to_type, to_id)
        targets.append((to_type, to_id))
    record = portal.create(object_type, item.get("properties") or {})
    for to_type, to_id in targets:
        portal.associate(object_type, record.id, to_type, to_id)
    return record


# --- single records -------------------------------------------------------------------------------


def list_objects(call: Call) -> Any:
    object_type = _type(call)
    history = _names(call, "propertiesWithHistory")
    cap = MAX_BATCH_WITH_HISTORY if history else MAX_LIST
    limit = _int(call.query.get("limit", ["10"])[-1], "limit", 1, cap)
    after = call.query.get("after", ["0"])[-1]
    records = [r for r in call.portal.live(object_type, _flag(call, "archived")) if int(r.id) >= int(after or 0)]
    page = records[:limit]
    results = records_json(page, call.portal, _names(call, "properties"), history)
    wanted = _names(call, "associations")
    for record, body in zip(page, results, strict=True):
        linked = {}
        for raw in wanted:
            to_type = call.portal.object_type(raw)
            ids = call.portal.associated(object_type, record.id, to_type)
            if ids:
                kind = f"{object_type[:-1]}_to_{to_type[:-1]}"
                linked[to_type] = {"results": [{"id": i, "type": kind} for i in ids]}
        if linked:
            body["associations"] = linked
    answer: dict[str, Any] = {"results": results}
    if len(records) > limit:
        answer["paging"] = {"next": {"after": records[limit].id, "link": f"?after={records[limit].id}"}}
    return answer


def create_object(call: Call) -> Any:
    record = _create_with_associations(call.portal, _type(call), call.body)
    return 201, record_json(record, call.portal, list(call.body.get("properties") or {}), [])


def read_object(call: Call) -> Any:
    object_type = _type(call)
    id_property = call.query.get("idProperty", [None])[-1]
    record = call.portal.get(object_type, call.params["object_id"], id_property=id_property)
    if (record.archived_ms is not None) != _flag(call, "archived"):
        raise not_found(object_type, call.params["object_id"])
    return record_json(record, call.portal, _names(call, "properties"), _names(call, "propertiesWithHistory"))


def update_object(call: Call) -> Any:
    object_type = _type(call)
    id_property = call.query.get("idProperty", [None])[-1]
    record = call.portal.get(object_type, call.params["object_id"], id_property=id_property)
    properties = call.body.get("properties") or {}
    call.portal.update(record, properties)
    return record_json(record, call.portal, list(properties), [])


def archive_object(call: Call) -> Any:
    object_type = _type(call)
    try:
        call.portal.archive(call.portal.get(object_type, call.params["object_id"]))
    except HubSpotError as error:
        if error.status != 404:  # archiving what is gone succeeds, as in HubSpot
            raise
    return 204, None


# --- batches --------------------------------------------------------------------------------------


def batch_read(call: Call) -> Any:
    object_type, body = _type(call), call.body
    history = list(body.get("propertiesWithHistory") or [])
    inputs = _inputs(body, MAX_BATCH_WITH_HISTORY if history else MAX_BATCH)
    archived, id_property = _flag(call, "archived"), body.get("idProperty")
    results, missing = [], []
    started = iso(call.portal.clock.now_ms())
    for item in inputs:
        wanted = str(item.get("id", ""))
        try:
            record = call.portal.get(object_type, wanted, id_property=id_property)
        except HubSpotError as error:
            if error.status != 404:
                raise
            missing.append(wanted)
            continue
        if (record.archived_ms is not None) != archived:
            missing.append(wanted)
            continue
        results.append(record_json(record, call.portal, list(body.get("properties") or []), history))
    errors = []
    if missing:
        errors.append(
            _item_error(HubSpotError(404, "OBJECT_NOT_FOUND", "Could not get some records."), {"ids": missing})
        )
    return _batch(results, errors, 200, started)


def batch_create(call: Call) -> Any:
    return _batch_write(call, "create")


def batch_update(call: Call) -> Any:
    return _batch_write(call, "update")


def batch_upsert(call: Call) -> Any:
    return _batch_write(call, "upsert")


def _batch_write(call: Call, kind: str) -> Any:
    """Each input written on its own: one failing is an error of the 207, not of the batch."""
    object_type = _type(call)
    inputs = _inputs(call.body, MAX_BATCH)
    started = iso(call.portal.clock.now_ms())
    if kind in ("update", "upsert"):
        repeated = [k for k, n in Counter(str(i.get("id")) for i in inputs).items() if n > 1]
        if repeated:
            raise validation(f"Duplicate IDs found in batch input: {repeated}. IDs must be unique")
    if kind == "upsert":  # the whole batch is refused for a key that is not a unique property
        for item in inputs:
            call.portal.unique_property(object_type, str(item.get("idProperty") or ""))
    results, errors = [], []
    for item in inputs:
        trace = str(item.get("objectWriteTraceId") or uuid.uuid4())
        try:
            results.append(_write_one(call.portal, object_type, kind, item))
        except HubSpotError as error:
            errors.append(_item_error(error, {"objectWriteTraceId": [trace], "ids": [str(item.get("id", ""))]}))
    return _batch(results, errors, 201 if kind == "create" else 200, started)


def _write_one(portal: Portal, object_type: str, kind: str, item: dict[str, Any]) -> dict[str, Any]:
    properties = item.get("properties") or {}
    if kind == "create":
        record = _create_with_associations(portal, object_type, item)
        return record_json(record, portal, list(properties), [])
    id_property = item.get("idProperty")
    if kind == "update":
        record = portal.get(object_type, str(item.get("id", "")), id_property=id_property)
        return record_json(portal.update(record, properties), portal, list(properties), [])
    key, id_property = str(item.get("id", "")), str(id_property)  # checked for the batch already
    try:
        record = portal.get(object_type, key, id_property=id_property)
    except HubSpotError as error:
        if error.status != 404:
            raise
        record = portal.create(object_type, {**properties, id_property: key})
        return {**record_json(record, portal, [*properties, id_property], []), "new": True}
    if record.archived_ms is not None:
        raise HubSpotError(409, "CONFLICT", f"The {object_type[:-1]} with {id_property}={key} is archived.")
    return {**record_json(portal.update(record, properties), portal, [*properties, id_property], []), "new": False}


def batch_archive(call: Call) -> Any:
    object_type = _type(call)
    for item in _inputs(call.body, MAX_BATCH):
        try:
            call.portal.archive(call.portal.get(object_type, str(item.get("id", ""))))
        except HubSpotError as error:
            if error.status != 404:
                raise
    return 204, None


def do_search(call: Call) -> Any:
    if not isinstance(call.body, dict):
        raise validation("The search body is an object.")
    return search(call.portal, _type(call), call.body)


def merge(call: Call) -> Any:
    body = call.body
    survivor = call.portal.merge(_type(call), str(body.get("primaryObjectId")), str(body.get("objectIdToMerge")))
    return record_json(survivor, call.portal, [], [])


# --- schema ---------------------------------------------------------------------------------------


def list_properties(call: Call) -> Any:
    object_type = _type(call)
    return {"results": [p.to_json(object_type) for p in call.portal.properties[object_type].values()]}


def create_property(call: Call) -> Any:
    object_type = _type(call)
    return 201, call.portal.create_property(object_type, call.body).to_json(object_type)


def read_property(call: Call) -> Any:
    object_type = _type(call)
    prop = call.portal.properties[object_type].get(call.params["name"])
    if prop is None:
        raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {call.params['name']}")
    return prop.to_json(object_type)


def update_property(call: Call) -> Any:
    object_type = _type(call)
    return call.portal.update_property(object_type, call.params["name"], call.body).to_json(object_type)


def pipelines(call: Call) -> Any:
    if _type(call) != "deals":
        return {"results": []}
    created = iso(0)
    return {"results": [p.to_json(created) for p in call.portal.pipelines.values()]}


# --- v4 associations ------------------------------------------------------------------------------


def associate_default(call: Call) -> Any:
    """The default (unlabelled) association; answered in a batch's shape."""
    portal, p = call.portal, call.params
    from_type, to_type = _type(call, "from_type"), _type(call, "to_type")
    portal.associate(from_type, p["from_id"], to_type, p["to_id"])
    spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ASSOCIATION_TYPES[(from_type, to_type)]}
    link = {"from": {"id": p["from_id"]}, "to": {"id": p["to_id"]}, "associationSpec": spec}
    return _batch([link], [], 200, iso(portal.clock.now_ms()))


def associate(call: Call) -> Any:
    """The association types listed in the body (201)."""
    portal, p = call.portal, call.params
    from_type, to_type = _type(call, "from_type"), _type(call, "to_type")
    if not isinstance(call.body, list) or not call.body:
        raise validation("The body is a list of {associationCategory, associationTypeId}.")
    for label in call.body:
        portal.associate(from_type, p["from_id"], to_type, p["to_id"], label.get("associationTypeId"))
    return 201, {
        "fromObjectTypeId": OBJECT_TYPES[from_type],
        "fromObjectId": p["from_id"],
        "toObjectTypeId": OBJECT_TYPES[to_type],
        "toObjectId": p["to_id"],
        "labels": [],
    }


def read_associations(call: Call) -> Any:
    from_type, to_type = _type(call, "from_type"), _type(call, "to_type")
    limit = _int(call.query.get("limit", [str(MAX_ASSOCIATIONS)])[-1], "limit", 1, MAX_ASSOCIATIONS)
    ids = call.portal.associated(from_type, call.params["from_id"], to_type)
    return {"results": [_association_target(from_type, to_type, i) for i in ids[:limit]]}


def batch_read_associations(call: Call) -> Any:
    from_type, to_type = _type(call, "from_type"), _type(call, "to_type")
    results, missing = [], []
    started = iso(call.portal.clock.now_ms())
    for item in _inputs(call.body, MAX_BATCH):
        from_id = str(item.get("id", ""))
        try:
            ids = call.portal.associated(from_type, from_id, to_type)
        except HubSpotError:
            missing.append(from_id)
            continue
        if ids:
            results.append({"from": {"id": from_id}, "to": [_association_target(from_type, to_type, i) for i in ids]})
    errors = [_item_error(not_found(from_type, ", ".join(missing)), {"ids": missing})] if missing else []
    return _batch(results, errors, 200, started)


def _association_target(from_type: str, to_type: str, to_id: str) -> dict[str, Any]:
    type_id = ASSOCIATION_TYPES[(from_type, to_type)]
    return {
        "toObjectId": int(to_id),
        "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}],
    }


# --- the routes -----------------------------------------------------------------------------------

OBJECTS = "/crm/v3/objects/{object_type}"
V4 = "/crm/v4/objects/{from_type}/{from_id}/associations"
API_ROUTES: list[tuple[str, dict[str, Handler]]] = [
    (OBJECTS, {"GET": list_objects, "POST": create_object}),
    (f"{OBJECTS}/batch/read", {"POST": batch_read}),
    (f"{OBJECTS}/batch/create", {"POST": batch_create}),
    (f"{OBJECTS}/batch/update", {"POST": batch_update}),
    (f"{OBJECTS}/batch/upsert", {"POST": batch_upsert}),
    (f"{OBJECTS}/batch/archive", {"POST": batch_archive}),
    (f"{OBJECTS}/search", {"POST": do_search}),
    (f"{OBJECTS}/merge", {"POST": merge}),
    (OBJECTS + "/{object_id}", {"GET": read_object, "PATCH": update_object, "DELETE": archive_object}),
    ("/crm/v3/properties/{object_type}", {"GET": list_properties, "POST": create_property}),
    ("/crm/v3/properties/{object_type}/{name}", {"GET": read_property, "PATCH": update_property}),
    ("/crm/v3/pipelines/{object_type}", {"GET": pipelines}),
    (V4 + "/default/{to_type}/{to_id}", {"PUT": associate_default}),
    (V4 + "/{to_type}/{to_id}", {"PUT": associate}),
    (V4 + "/{to_type}", {"GET": read_associations}),
    ("/crm/v4/associations/{from_type}/{to_type}/batch/read", {"POST": batch_read_associations}),
]
"""Each path template with its handler per method."""


def api_routes() -> list[Route]:
    """One Starlette route per path template, answering the methods it has handlers for."""
    return [
        Route(path, functools.partial(_serve, path, handlers), methods=list(handlers)) for path, handlers in API_ROUTES
    ]


async def _serve(template: str, handlers: dict[str, Handler], request: Request) -> Response:
    sandbox: HubSpotSandbox = emulator_of(request)
    return await sandbox.serve(request, f"{request.method} {template}", handlers[request.method])
