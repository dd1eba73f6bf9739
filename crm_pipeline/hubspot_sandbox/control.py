"""The ``/_hubspot`` control surface: reset, limits, faults, clock, stats, and what only a person
in HubSpot's UI can do (edit a record as a user, restore one from the recycling bin)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.bodies import parse_json_body
from crm_pipeline.emulation.control import Latency, RollingWindowLimiter
from crm_pipeline.emulation.errors import BadRequest

from .errors import HubSpotError, validation
from .portal import API_USER, Source, record_json
from .runtime import FAULT_KINDS, TEN_SECONDS, HubSpotSandbox, error_response

UI = "CRM_UI"


def control_routes(sandbox: HubSpotSandbox) -> list[Route]:
    portal = sandbox.portal

    def control(handler: Callable[[Request, Any], Any], methods: list[str], path: str) -> Route:
        async def serve(request: Request) -> Response:
            try:
                body = parse_json_body(await request.body()) if request.method in ("POST", "PUT", "PATCH") else {}
                return Response(json.dumps(handler(request, body)), media_type="application/json")
            except HubSpotError as error:
                return error_response(error)
            except (BadRequest, TypeError, ValueError, KeyError) as error:
                return error_response(validation(f"Bad control request: {error}"))
            finally:
                sandbox.save_if_changed()

        return Route(f"/_hubspot{path}", serve, methods=methods)

    def reset(_: Request, __: Any) -> Any:
        sandbox.reset()
        return {"ok": True}

    def configure(request: Request, body: dict[str, Any]) -> Any:
        if request.method == "PUT":
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

    def faults(request: Request, body: Any) -> Any:
        return sandbox.faults.control(request.method, body, FAULT_KINDS, "/crm/*")

    def clock(request: Request, body: dict[str, Any]) -> Any:
        if request.method == "POST":
            if body.get("real"):
                sandbox.clock.use_real_time()
            elif "set" in body:
                sandbox.clock.set(datetime.fromisoformat(str(body["set"])))
            elif "advance_seconds" in body:
                sandbox.clock.advance(float(body["advance_seconds"]))
            else:
                raise validation("Clock changes are an object: {set} | {advance_seconds} | {real: true}.")
        return sandbox.clock.describe()

    def stats(request: Request, _: Any) -> Any:
        return sandbox.stats.control(request.method)

    def ui_create(request: Request, body: dict[str, Any]) -> Any:
        """A person creates the record in HubSpot's UI: history says ``CRM_UI`` and their user id."""
        object_type = portal.object_type(request.path_params["object_type"])
        user_id = int(body.get("userId", 1))
        properties = body.get("properties") or {}
        record = portal.create(object_type, properties, Source(UI, f"userId:{user_id}", user_id))
        return record_json(record, portal, list(properties), [])

    def ui_edit(request: Request, body: dict[str, Any]) -> Any:
        """A person edits the record in HubSpot's UI (history: ``CRM_UI`` and their user id), or,
        with ``appId``, another app writes it through the API (history: ``API`` and that app)."""
        object_type = portal.object_type(request.path_params["object_type"])
        record = portal.get(object_type, request.path_params["object_id"])
        user_id = int(body.get("userId", 1))
        app_id = body.get("appId")
        source = Source(API_USER, str(app_id)) if app_id else Source(UI, f"userId:{user_id}", user_id)
        portal.update(record, body.get("properties") or {}, source)
        return record_json(record, portal, list(body.get("properties") or {}), [])

    def ui_restore(request: Request, body: dict[str, Any]) -> Any:
        object_type = portal.object_type(request.path_params["object_type"])
        record = portal.get(object_type, request.path_params["object_id"])
        user_id = int(body.get("userId", 1))
        return record_json(portal.restore(record, Source(UI, f"userId:{user_id}", user_id)), portal, [], [])

    def all_records(request: Request, _: Any) -> Any:
        object_type = portal.object_type(request.path_params["object_type"])
        records = portal.live(object_type) + portal.live(object_type, archived=True)
        names = sorted(portal.properties[object_type])
        return {"results": [record_json(r, portal, names, names) for r in sorted(records, key=lambda r: int(r.id))]}

    return [
        control(reset, ["POST"], "/reset"),
        control(configure, ["GET", "PUT"], "/config"),
        control(faults, ["GET", "POST", "DELETE"], "/faults"),
        control(clock, ["GET", "POST"], "/clock"),
        control(stats, ["GET", "DELETE"], "/stats"),
        control(all_records, ["GET"], "/objects/{object_type}"),
        control(ui_create, ["POST"], "/objects/{object_type}"),
        control(ui_edit, ["PATCH"], "/objects/{object_type}/{object_id}"),
        control(ui_restore, ["POST"], "/objects/{object_type}/{object_id}/restore"),
    ]
