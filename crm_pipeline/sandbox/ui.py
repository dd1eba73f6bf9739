"""The sandbox's "Notion UI": server-rendered pages under `/ui/` where a person lists a data
source's rows and edits a cell, as one of the workspace's people.

A save is the API's own page update (`Workspace.update_page`, which `PATCH /v1/pages/{id}` runs)
made by the chosen person: the same validation, `last_edited_time` from the sandbox clock rounded
to the minute, and `last_edited_by` that person, so the edit looks to the API exactly like one made
in Notion's UI. The pages are apart from the API: no token, no rate limit, no scripted faults, not
counted in the statistics. Every value shown is HTML-escaped (the HTML is in `ui_html`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from crm_pipeline.emulation.routes import emulator_of

from .errors import NotionError, validation
from .model import DataSource, Page, PropertySchema, User, normalize_id
from .properties import plain_text, render_value
from .runtime import MAX_BODY_BYTES, Sandbox
from .state import Workspace
from .ui_html import (
    EDITABLE_TYPES,
    UI_PATH,
    Form,
    alert,
    document,
    editor_body,
    first,
    index_body,
    number_text,
    table_body,
    table_href,
)

Endpoint = Callable[[Request], Awaitable[Response]]
logger = logging.getLogger(__name__)


def ui_url(base_url: str) -> str:
    """The index page of a sandbox served at `base_url`."""
    return base_url.rstrip("/") + UI_PATH


def ui_routes() -> list[Route]:
    """The pages, each answering any error as a page that says it."""
    return [
        Route(UI_PATH.rstrip("/"), to_index, methods=["GET"]),
        Route(UI_PATH, functools.partial(_as_html, index), methods=["GET"]),
        Route(f"{UI_PATH}data_sources/{{data_source_id}}", functools.partial(_as_html, data_source), methods=["GET"]),
        Route(f"{UI_PATH}pages/{{page_id}}/edit", functools.partial(_as_html, edit), methods=["GET"]),
        Route(f"{UI_PATH}pages/{{page_id}}", functools.partial(_as_html, save), methods=["POST"]),
        Route(f"{UI_PATH}{{rest:path}}", functools.partial(_as_html, unknown), methods=["GET", "POST"]),
    ]


async def _as_html(handler: Endpoint, request: Request) -> Response:
    """Any error becomes a page saying it (a 404 for an unknown id, a 400 for bad input)."""
    try:
        return await handler(request)
    except NotionError as error:
        return document("Error", alert(error.message), error.status)
    except Exception:  # a sandbox bug: say so on the page and in the log
        logger.exception("unexpected error serving %s %s", request.method, request.url.path)
        return document("Error", alert("Unexpected error occurred."), 500)


# --- the pages -------------------------------------------------------------------------------------


async def index(request: Request) -> Response:
    return document("Data sources", index_body(_workspace(request)))


async def data_source(request: Request) -> Response:
    ws = _workspace(request)
    ds = ws.data_source(request.path_params["data_source_id"])
    return document(ds.title, table_body(ws, ds, _person(ws, request.query_params.get("as"))))


async def edit(request: Request) -> Response:
    ws = _workspace(request)
    page = ws.page(request.path_params["page_id"])
    prop = _editable(ws.source_of(page), request.query_params.get("property", ""))
    person = _person(ws, request.query_params.get("as"))
    return document(prop.name, editor_body(ws, page, prop, person, _form_of(ws, page, prop), None))


async def save(request: Request) -> Response:
    """The edit made as the chosen person, then back to the table at its row; a refused one shows
    the editor again with the API's reason."""
    ws = _workspace(request)
    page = ws.page(request.path_params["page_id"])
    ds = ws.source_of(page)
    form = await _read_form(request)
    prop = _editable(ds, first(form, "property"))
    person = _person(ws, first(form, "user"), strict=True)
    try:
        ws.update_page(person, page, {"properties": {prop.name: _write(prop, form, page)}})
    except NotionError as error:
        return document(prop.name, editor_body(ws, page, prop, person, form, error.message), error.status)
    return RedirectResponse(f"{table_href(ds, person)}#{page.id}", status_code=303)


async def to_index(_: Request) -> Response:
    return RedirectResponse(UI_PATH)


async def unknown(request: Request) -> Response:
    raise NotionError(404, "object_not_found", f"No page at {request.url.path}.")


# --- reading the request ---------------------------------------------------------------------------


async def _read_form(request: Request) -> Form:
    """The posted form (`application/x-www-form-urlencoded`, what a browser sends), UTF-8 only."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise validation(f"Request body too large: {len(raw)} bytes, the limit is {MAX_BODY_BYTES}.")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise validation("The form is not UTF-8 text.") from None
    form: Form = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _workspace(request: Request) -> Workspace:
    sandbox: Sandbox = emulator_of(request)
    return sandbox.workspace


def _person(ws: Workspace, raw_id: str | None, strict: bool = False) -> User:
    """The person named, or (unless `strict`) the workspace's first person when none is."""
    person = ws.people.get(normalize_id(raw_id) or "") if raw_id else None
    if person is not None:
        return person
    if strict:
        raise validation(f"Edits are made as a person in the workspace; {raw_id!r} is none of its people.")
    return next(iter(ws.people.values()))


def _editable(ds: DataSource, key: str) -> PropertySchema:
    prop = ds.resolve(key) if key else None
    if prop is None:
        raise validation(f"Could not find property with name or id: {key}")
    if prop.type not in EDITABLE_TYPES:
        raise validation(f"{prop.name} is a {prop.type} property, which this page cannot edit.")
    return prop


# --- a form and the API's write shape --------------------------------------------------------------


def _form_of(ws: Workspace, page: Page, prop: PropertySchema) -> Form:
    """The editor's fields filled with the property's current value."""
    value = render_value(prop, page, ws.user_table)[prop.type]
    kind = prop.type
    if kind in ("title", "rich_text"):
        return {"value": [plain_text(value)]}
    if kind == "number":
        return {"value": [number_text(value)]}
    if kind in ("select", "status"):
        return {"value": [value["name"] if value else ""]}
    if kind == "multi_select":
        return {"option": [option["name"] for option in value]}
    if kind == "people":
        return {"person": [user["id"] for user in value]}
    if kind == "date":
        return {"start": [value["start"]], "end": [value["end"] or ""]} if value else {}
    if kind == "checkbox":
        return {"checked": ["on"]} if value else {}
    return {"value": [value or ""]}  # email, url, phone_number


def _write(prop: PropertySchema, form: Form, page: Page) -> dict[str, Any]:
    """The property value in the API's write shape. Input that cannot be read as its type (a
    number that is not one) is passed on as typed, so the API's validation names it."""
    kind, text = prop.type, first(form, "value")
    value: Any
    if kind in ("title", "rich_text"):
        value = [{"text": {"content": text}}] if text else []
    elif kind == "number":
        value = _number(text.strip())
    elif kind in ("select", "status"):
        value = {"name": text.strip()} if text.strip() else None
    elif kind == "multi_select":
        names = [*form.get("option", []), first(form, "new_option").strip()]
        value = [{"name": name} for name in dict.fromkeys(names) if name]
    elif kind == "people":
        value = [{"object": "user", "id": user_id} for user_id in form.get("person", [])]
    elif kind == "date":
        start, end = first(form, "start").strip(), first(form, "end").strip()
        kept_zone = (page.values.get(prop.id) or {}).get("time_zone")
        value = {"start": start, "end": end or None, "time_zone": kept_zone} if start or end else None
    elif kind == "checkbox":
        value = "checked" in form
    else:  # email, url, phone_number
        value = text.strip() or None
    return {kind: value}


def _number(text: str) -> Any:
    """A JSON number as the API would receive it (a double; whole ones written as integers)."""
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        return text
    return int(number) if number.is_integer() and abs(number) < 2**53 else number
