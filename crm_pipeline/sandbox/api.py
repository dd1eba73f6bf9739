"""Notion's `/v1` endpoints: each handler turns a `Call` into a Notion response body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import validation
from .render import (
    block_json,
    data_source_json,
    database_json,
    list_json,
    page_json,
    page_text,
)
from .runtime import Call, Handler, Sandbox


def _filter_properties(call: Call, ds_id: str) -> set[str] | None:
    keys = call.query.get("filter_properties") or call.query.get("filter_properties[]")
    if not keys:
        return None
    ds = call.workspace.data_sources[ds_id]
    resolved = set()
    for key in keys:
        prop = ds.resolve(key)
        if prop is None:
            raise validation(f"Could not find property with name or id: {key}")
        resolved.add(prop.id)
    return resolved


def _page_result(call: Call, page_id: str) -> Any:
    ws = call.workspace
    page = ws.pages[page_id]
    ds = ws.source_of(page)
    only = _filter_properties(call, ds.id)
    return page_text(ds, page) if only is None else page_json(ds, page, only)


def users_me(call: Call) -> Any:
    return call.actor.to_json()


def get_database(call: Call) -> Any:
    db = call.workspace.database(call.params["database_id"])
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def create_database(call: Call) -> Any:
    db = call.workspace.create_database(call.actor, call.body)
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def get_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    return data_source_json(ds, call.workspace.databases[ds.database_id])


def update_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    call.workspace.update_data_source(call.actor, ds, call.body)
    return data_source_json(ds, call.workspace.databases[ds.database_id])


def query_data_source(call: Call) -> Any:
    ds = call.workspace.data_source(call.params["data_source_id"])
    only = _filter_properties(call, ds.id)
    result = call.workspace.queries.run(ds, call.body, call.sandbox.result_cap)
    pages = (page_text(ds, p) if only is None else json.dumps(page_json(ds, p, only)) for p in result.pages)
    tail = (
        ',"request_status":{"type":"incomplete","incomplete_reason":"query_result_limit_reached"}'
        if result.capped
        else ""
    )
    return (
        '{"object":"list","results":['
        + ",".join(pages)
        + '],"next_cursor":'
        + json.dumps(result.next_cursor)
        + ',"has_more":'
        + json.dumps(result.next_cursor is not None)
        + ',"type":"page_or_data_source","page_or_data_source":{}'
        + tail
        + "}"
    )


def create_page(call: Call) -> Any:
    return _page_result(call, call.workspace.create_page(call.actor, call.body).id)


def get_page(call: Call) -> Any:
    return _page_result(call, call.workspace.page(call.params["page_id"]).id)


def update_page(call: Call) -> Any:
    page = call.workspace.page(call.params["page_id"])
    return _page_result(call, call.workspace.update_page(call.actor, page, call.body).id)


def list_children(call: Call) -> Any:
    children = call.workspace.children_of(call.params["block_id"])
    size_text = (call.query.get("page_size") or ["100"])[0]
    if not size_text.isdigit() or not 1 <= int(size_text) <= 100:
        raise validation(
            f"query failed validation: query.page_size should be an integer between 1 and 100, instead was `{size_text}`."
        )
    cursors = call.query.get("start_cursor")
    start = 0
    if cursors:
        cursor = cursors[0]
        if cursor not in children:
            raise validation(f"The start_cursor provided is invalid: {cursor}")
        start = children.index(cursor)
    end = start + int(size_text)
    blocks = [block_json(call.workspace.blocks[i]) for i in children[start:end]]
    return list_json(blocks, children[end] if end < len(children) else None, "block")


def append_children(call: Call) -> Any:
    created = call.workspace.append_children(call.actor, call.params["block_id"], call.body)
    return list_json([block_json(block) for block in created], None, "block")


API_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/users/me", users_me),
    ("POST", "/v1/databases", create_database),
    ("GET", "/v1/databases/{database_id}", get_database),
    ("GET", "/v1/data_sources/{data_source_id}", get_data_source),
    ("PATCH", "/v1/data_sources/{data_source_id}", update_data_source),
    ("POST", "/v1/data_sources/{data_source_id}/query", query_data_source),
    ("POST", "/v1/pages", create_page),
    ("GET", "/v1/pages/{page_id}", get_page),
    ("PATCH", "/v1/pages/{page_id}", update_page),
    ("GET", "/v1/blocks/{block_id}/children", list_children),
    ("PATCH", "/v1/blocks/{block_id}/children", append_children),
]
ALL_METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def api_routes(sandbox: Sandbox) -> list[Route]:
    """One Starlette route per path template; an unsupported method there is an invalid URL, as in Notion."""
    by_template: dict[str, dict[str, Handler]] = {}
    for method, template, handler in API_ROUTES:
        by_template.setdefault(template, {})[method] = handler

    def endpoint(template: str, handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            return await sandbox.serve(request, f"{request.method} {template}", handlers.get(request.method))

        return serve

    routes = [Route(t, endpoint(t, h), methods=ALL_METHODS) for t, h in by_template.items()]
    routes.append(Route("/v1/{rest:path}", endpoint("<unknown>", {}), methods=ALL_METHODS))
    return routes
