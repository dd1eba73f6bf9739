"""Notion's `/v1` endpoints: each handler turns a `Call` into a Notion response body."""

from __future__ import annotations

import functools
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.routes import ALL_METHODS, emulator_of

from .errors import MISSING, body_validation, validation
from .model import DataSource, Page
from .query import page_size_of, paginate
from .query_columns import MAX_PAGE_SIZE, Viewer
from .render import (
    block_json,
    data_source_json,
    database_json,
    list_json,
    page_json,
    page_text,
    page_title,
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
    users = ws.user_table
    return page_text(ds, page, users) if only is None else page_json(ds, page, users, only)


def users_me(call: Call) -> Any:
    return call.actor.to_json()


def list_users(call: Call) -> Any:
    cursors = call.query.get("start_cursor")
    users, next_cursor = paginate(call.workspace.users(), cursors[0] if cursors else None, _query_page_size(call))
    return list_json([user.to_json() for user in users], next_cursor, "user")


def _query_page_size(call: Call) -> int:
    size_text = (call.query.get("page_size") or ["100"])[0]
    if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_PAGE_SIZE:
        raise validation(
            "query failed validation: query.page_size should be an integer between 1 and "
            f"{MAX_PAGE_SIZE}, instead was `{size_text}`."
        )
    return int(size_text)


def get_user(call: Call) -> Any:
    return call.workspace.user(call.params["user_id"]).to_json()


def search(call: Call) -> Any:
    """Pages and data sources whose title contains `query` (case-insensitive), most recently
    edited first (the sandbox's relevance) or sorted by `last_edited_time`; trashed ones only
    with `filter.in_trash`. Everything in the sandbox is shared with every integration."""
    ws, body = call.workspace, call.body
    query = body.get("query", "")
    if not isinstance(query, str):
        raise body_validation("body.query", "should be a string", query)
    kind, in_trash = _search_filter(body.get("filter"))
    descending = _search_descending(body.get("sort"))
    folded = query.casefold()
    found: list[DataSource | Page] = []
    if kind in (None, "data_source"):
        found += [ds for ds in ws.data_sources.values() if ds.in_trash == in_trash and folded in ds.title.casefold()]
    if kind in (None, "page"):
        found += [
            page
            for ds in ws.data_sources.values()
            for page in ds.pages.values()
            if page.in_trash == in_trash and folded in page_title(ds, page).casefold()
        ]
    found.sort(key=lambda item: item.edited_ms, reverse=descending)
    results, next_cursor = paginate(
        found, body.get("start_cursor"), page_size_of(body.get("page_size"), "body.page_size")
    )
    return list_json(
        [
            page_json(ws.source_of(item), item, ws.user_table)
            if isinstance(item, Page)
            else data_source_json(item, ws.databases[item.database_id])
            for item in results
        ],
        next_cursor,
        "page_or_data_source",
    )


def _search_filter(raw: Any) -> tuple[str | None, bool]:
    """`{property: "object", value: "page" | "data_source", in_trash?}` or `{in_trash}`."""
    if raw is None:
        return None, False
    if not isinstance(raw, dict):
        raise body_validation("body.filter", "should be an object", raw)
    in_trash = raw.get("in_trash", False)
    if not isinstance(in_trash, bool):
        raise body_validation("body.filter.in_trash", "should be a boolean", in_trash)
    if "property" not in raw and "value" not in raw:
        return None, in_trash
    if raw.get("property") != "object" or raw.get("value") not in ("page", "data_source"):
        raise body_validation("body.filter", 'should be `{property: "object", value: "page" | "data_source"}`', raw)
    return raw["value"], in_trash


def _search_descending(raw: Any) -> bool:
    if raw is None or raw == {"property": "relevance"}:
        return True
    direction = raw.get("direction", MISSING) if isinstance(raw, dict) else MISSING
    if (
        not isinstance(raw, dict)
        or raw.get("timestamp") != "last_edited_time"
        or direction
        not in (
            "ascending",
            "descending",
        )
    ):
        raise body_validation("body.sort", 'should be `{timestamp: "last_edited_time", direction}`', raw)
    return bool(direction == "descending")


def get_database(call: Call) -> Any:
    db = call.workspace.database(call.params["database_id"])
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def create_database(call: Call) -> Any:
    db = call.workspace.create_database(call.actor, call.body)
    return database_json(db, [call.workspace.data_sources[i] for i in db.data_source_ids])


def create_data_source(call: Call) -> Any:
    ds = call.workspace.create_data_source(call.actor, call.body)
    return data_source_json(ds, call.workspace.databases[ds.database_id])


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
    users = call.workspace.user_table
    result = call.workspace.queries.run(ds, call.body, call.sandbox.result_cap, Viewer(call.actor.id, users))
    pages = (
        page_text(ds, p, users) if only is None else json.dumps(page_json(ds, p, users, only)) for p in result.pages
    )
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
    page_size = _query_page_size(call)
    cursors = call.query.get("start_cursor")
    start = 0
    if cursors:
        cursor = cursors[0]
        if cursor not in children:
            raise validation(f"The start_cursor provided is invalid: {cursor}")
        start = children.index(cursor)
    end = start + page_size
    blocks = [block_json(call.workspace.blocks[i]) for i in children[start:end]]
    return list_json(blocks, children[end] if end < len(children) else None, "block")


def append_children(call: Call) -> Any:
    created = call.workspace.append_children(call.actor, call.params["block_id"], call.body)
    return list_json([block_json(block) for block in created], None, "block")


API_ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v1/users/me", users_me),
    ("GET", "/v1/users", list_users),
    ("GET", "/v1/users/{user_id}", get_user),
    ("POST", "/v1/search", search),
    ("POST", "/v1/data_sources", create_data_source),
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


def api_routes() -> list[Route]:
    """One Starlette route per path template; an unsupported method there is an invalid URL, as in Notion."""
    by_template: dict[str, dict[str, Handler]] = {}
    for method, template, handler in API_ROUTES:
        by_template.setdefault(template, {})[method] = handler
    routes = [Route(t, functools.partial(_serve, t, h), methods=ALL_METHODS) for t, h in by_template.items()]
    routes.append(Route("/v1/{rest:path}", functools.partial(_serve, "<unknown>", {}), methods=ALL_METHODS))
    return routes


async def _serve(template: str, handlers: dict[str, Handler], request: Request) -> Response:
    sandbox: Sandbox = emulator_of(request)
    return await sandbox.serve(request, f"{request.method} {template}", handlers.get(request.method))
