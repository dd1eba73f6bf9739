"""The ``/_hubspot`` control surface: reset, limits, faults, clock, stats, and what only a person
in HubSpot's UI can do (edit a record as a user, restore one from the recycling bin). Each handler
turns a ``Control`` into a JSON body; ``CONTROL_ROUTES`` names the handler of each path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.routing import Route

from crm_pipeline.emulation.control import Latency, RollingWindowLimiter
from crm_pipeline.emulation.routes import ControlCall, shared_control_routes, table_routes
from crm_pipeline.emulation.runtime import serve_control

from .model import API_USER, Source
from .render import record_json
from .runtime import FAULT_KINDS, TEN_SECONDS, HubSpotSandbox

UI = "CRM_UI"
Control = ControlCall[HubSpotSandbox]
ControlHandler = Callable[[Control], Any]


def configure(call: Control) -> Any:
    """PUT changes the limits and the portal's search behaviour; each answers them."""
    if call.method == "PUT":
        _apply_settings(call.sandbox, call.body)
    sandbox, portal = call.sandbox, call.sandbox.portal
    return {
        "ten_secondly_limit": sandbox.ten_secondly.limit,
        "search_per_second": sandbox.search_secondly.limit,
        "daily_limit": sandbox.daily_limit,
        "search_lag_ms": portal.search_lag_ms,
        "search_result_cap": portal.search_result_cap,
        "preserve_merged_ids": portal.preserve_merged_ids,
        "retry_after_s": sandbox.retry_after_s,
        "latency_ms": sandbox.latency.fixed_ms,
        "jitter_ms": sandbox.latency.jitter_ms,
    }


def _apply_settings(sandbox: HubSpotSandbox, body: dict[str, Any]) -> None:
    portal = sandbox.portal
    ten = int(body.get("ten_secondly_limit", sandbox.ten_secondly.limit))
    search = int(body.get("search_per_second", sandbox.search_secondly.limit))
    limiters = (
        RollingWindowLimiter("TEN_SECONDLY_ROLLING", ten, TEN_SECONDS, sandbox.ten_secondly.clock),
        RollingWindowLimiter("SECONDLY", search, 1.0, sandbox.search_secondly.clock),
    )
    latency = Latency(
        float(body.get("latency_ms", sandbox.latency.fixed_ms)),
        float(body.get("jitter_ms", sandbox.latency.jitter_ms)),
    )
    sandbox.ten_secondly, sandbox.search_secondly = limiters  # everything checked first
    sandbox.latency = latency
    sandbox.daily_limit = int(body.get("daily_limit", sandbox.daily_limit))
    portal.search_lag_ms = int(body.get("search_lag_ms", portal.search_lag_ms))
    portal.search_result_cap = int(body.get("search_result_cap", portal.search_result_cap))
    portal.preserve_merged_ids = bool(body.get("preserve_merged_ids", portal.preserve_merged_ids))
    sandbox.retry_after_s = body.get("retry_after_s", sandbox.retry_after_s)


def _person(body: dict[str, Any]) -> Source:
    """A person in HubSpot's UI (``userId``, 1 unless named): history says ``CRM_UI`` and the id."""
    user_id = int(body.get("userId", 1))
    return Source(UI, f"userId:{user_id}", user_id)


def ui_create(call: Control) -> Any:
    """A person creates the record in HubSpot's UI."""
    portal = call.sandbox.portal
    properties = call.body.get("properties") or {}
    record = portal.create(portal.object_type(call.params["object_type"]), properties, _person(call.body))
    return record_json(record, portal, list(properties), [])


def ui_edit(call: Control) -> Any:
    """A person edits the record in HubSpot's UI, or, with ``appId``, another app writes it through
    the API (history: ``API`` and that app)."""
    portal, body = call.sandbox.portal, call.body
    record = portal.get(portal.object_type(call.params["object_type"]), call.params["object_id"])
    person, app_id = _person(body), body.get("appId")
    source = Source(API_USER, str(app_id)) if app_id else person
    portal.update(record, body.get("properties") or {}, source)
    return record_json(record, portal, list(body.get("properties") or {}), [])


def ui_restore(call: Control) -> Any:
    """A person restores the record from the recycling bin."""
    portal = call.sandbox.portal
    record = portal.get(portal.object_type(call.params["object_type"]), call.params["object_id"])
    return record_json(portal.restore(record, _person(call.body)), portal, [], [])


def all_records(call: Control) -> Any:
    """Every record of the type, archived ones too, with every property and its history."""
    portal = call.sandbox.portal
    object_type = portal.object_type(call.params["object_type"])
    records = portal.live(object_type) + portal.live(object_type, archived=True)
    names = sorted(portal.properties[object_type])
    return {"results": [record_json(r, portal, names, names) for r in sorted(records, key=lambda r: int(r.id))]}


CONTROL_ROUTES: list[tuple[str, list[str], ControlHandler]] = [
    *shared_control_routes(FAULT_KINDS, "/crm/*"),
    ("/config", ["GET", "PUT"], configure),
    ("/objects/{object_type}", ["GET"], all_records),
    ("/objects/{object_type}", ["POST"], ui_create),
    ("/objects/{object_type}/{object_id}", ["PATCH"], ui_edit),
    ("/objects/{object_type}/{object_id}/restore", ["POST"], ui_restore),
]
"""Each path under ``/_hubspot``, its methods and its handler."""


def control_routes() -> list[Route]:
    return table_routes("/_hubspot", CONTROL_ROUTES, serve_control)
