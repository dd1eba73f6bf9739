"""The sandbox's "Notion UI": server-rendered pages under `/ui/` where a person lists a data
source's rows and edits a cell, as one of the workspace's people.

A save is the API's own page update (`Workspace.update_page`, which `PATCH /v1/pages/{id}` runs)
made by the chosen person: the same validation, `last_edited_time` from the sandbox clock rounded
to the minute, and `last_edited_by` that person, so the edit looks to the API exactly like one made
in Notion's UI. The pages are apart from the API: no token, no rate limit, no scripted faults, not
counted in the statistics. Every value shown is HTML-escaped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from crm_pipeline.emulation.clock import iso_minute

from .errors import NotionError, validation
from .model import DataSource, Page, PropertySchema, User, normalize_id
from .properties import plain_text, render_value
from .render import page_title
from .runtime import MAX_BODY_BYTES, Sandbox
from .state import Workspace

UI_PATH = "/ui/"
"""Where the pages are served: the index of data sources."""
EDITABLE_TYPES = frozenset(
    ("title", "rich_text", "number", "select", "status", "multi_select", "date", "checkbox")
    + ("email", "url", "phone_number", "people")
)
Form = dict[str, list[str]]  # field name -> its values, as a browser posts them
logger = logging.getLogger(__name__)

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #37352f; }
table { border-collapse: collapse; }
th, td { border: 1px solid #e3e2e0; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f7f6f3; font-weight: 600; }
a.cell { display: block; color: inherit; text-decoration: none; min-width: 3rem; }
a.cell:hover { background: #efefed; }
.empty { color: #b4b4b0; }
.error { color: #e03e3e; white-space: pre-wrap; border: 1px solid #e03e3e; padding: .5rem; }
form label { display: block; margin: .5rem 0; }
"""


def ui_url(base_url: str) -> str:
    """The index page of a sandbox served at `base_url`."""
    return base_url.rstrip("/") + UI_PATH


def ui_routes(sandbox: Sandbox) -> list[Route]:
    ws = sandbox.workspace

    def as_html(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Any error becomes a page saying it (a 404 for an unknown id, a 400 for bad input)."""

        async def serve(request: Request) -> Response:
            try:
                return await handler(request)
            except NotionError as error:
                return _document("Error", _error(error.message), error.status)
            except Exception:  # a sandbox bug: say so on the page and in the log
                logger.exception("unexpected error serving %s %s", request.method, request.url.path)
                return _document("Error", _error("Unexpected error occurred."), 500)

        return serve

    async def index(request: Request) -> Response:
        return _document("Data sources", _index(ws))

    async def data_source(request: Request) -> Response:
        ds = ws.data_source(request.path_params["data_source_id"])
        return _document(ds.title, _table(ws, ds, _person(ws, request.query_params.get("as"))))

    async def edit(request: Request) -> Response:
        page = ws.page(request.path_params["page_id"])
        prop = _editable(ws.source_of(page), request.query_params.get("property", ""))
        person = _person(ws, request.query_params.get("as"))
        return _document(prop.name, _editor(ws, page, prop, person, _form_of(ws, page, prop), None))

    async def save(request: Request) -> Response:
        page = ws.page(request.path_params["page_id"])
        ds = ws.source_of(page)
        form = await _read_form(request)
        prop = _editable(ds, _first(form, "property"))
        person = _person(ws, _first(form, "user"), strict=True)
        try:
            ws.update_page(person, page, {"properties": {prop.name: _write(prop, form, page)}})
        except NotionError as error:
            return _document(prop.name, _editor(ws, page, prop, person, form, error.message), error.status)
        return RedirectResponse(f"{_table_href(ds, person)}#{page.id}", status_code=303)

    async def to_index(_: Request) -> Response:
        return RedirectResponse(UI_PATH)

    async def unknown(request: Request) -> Response:
        raise NotionError(404, "object_not_found", f"No page at {request.url.path}.")

    return [
        Route(UI_PATH.rstrip("/"), to_index, methods=["GET"]),
        Route(UI_PATH, as_html(index), methods=["GET"]),
        Route(f"{UI_PATH}data_sources/{{data_source_id}}", as_html(data_source), methods=["GET"]),
        Route(f"{UI_PATH}pages/{{page_id}}/edit", as_html(edit), methods=["GET"]),
        Route(f"{UI_PATH}pages/{{page_id}}", as_html(save), methods=["POST"]),
        Route(f"{UI_PATH}{{rest:path}}", as_html(unknown), methods=["GET", "POST"]),
    ]


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


def _first(form: Form, name: str) -> str:
    return (form.get(name) or [""])[0]


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
        return {"value": [_number_text(value)]}
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
    kind, text = prop.type, _first(form, "value")
    value: Any
    if kind in ("title", "rich_text"):
        value = [{"text": {"content": text}}] if text else []
    elif kind == "number":
        value = _number(text.strip())
    elif kind in ("select", "status"):
        value = {"name": text.strip()} if text.strip() else None
    elif kind == "multi_select":
        names = [*form.get("option", []), _first(form, "new_option").strip()]
        value = [{"name": name} for name in dict.fromkeys(names) if name]
    elif kind == "people":
        value = [{"object": "user", "id": user_id} for user_id in form.get("person", [])]
    elif kind == "date":
        start, end = _first(form, "start").strip(), _first(form, "end").strip()
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


def _number_text(value: Any) -> str:
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- rendering -------------------------------------------------------------------------------------


def _document(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · Sandbox Notion</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>",
        status_code=status,
    )


def _error(message: str) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>'


def _table_href(ds: DataSource, person: User) -> str:
    return f"{UI_PATH}data_sources/{ds.id}?{urlencode({'as': person.id})}"


def _index(ws: Workspace) -> str:
    rows = "".join(
        f'<tr><td>{escape(db.title)}</td><td><a href="{UI_PATH}data_sources/{ds.id}">{escape(ds.title)}</a></td>'
        f"<td>{sum(not page.in_trash for page in ds.pages.values())}</td></tr>"
        for db in ws.databases.values()
        for ds in (ws.data_sources[ds_id] for ds_id in db.data_source_ids)
        if not ds.in_trash
    )
    return (
        "<h1>Sandbox Notion</h1>"
        "<p>Open a data source, then click a cell to edit it as one of the workspace's people.</p>"
        f"<table><thead><tr><th>Database</th><th>Data source</th><th>Pages</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _columns(ds: DataSource) -> list[PropertySchema]:
    """The title first, as Notion shows it, then the schema's order."""
    title = ds.title_property()
    return [title, *(prop for prop in ds.properties.values() if prop is not title)]


def _table(ws: Workspace, ds: DataSource, person: User) -> str:
    columns = _columns(ds)
    head = "".join(f'<th title="{escape(prop.type)}">{escape(prop.name)}</th>' for prop in columns)
    rows = "".join(
        f'<tr id="{page.id}">'
        + "".join(_cell(ws, page, prop, person) for prop in columns)
        + f"<td>{iso_minute(page.edited_ms)} by {escape(_user_name(ws, page.edited_by))}</td></tr>"
        for page in ds.pages.values()
        if not page.in_trash
    )
    database = ws.databases[ds.database_id]
    return (
        f'<p><a href="{UI_PATH}">All data sources</a></p>'
        f"<h1>{escape(ds.title)}</h1>"
        f"<p>In {escape(database.title)}. Click a cell to edit it (as {escape(person.name)} unless you choose another).</p>"
        f"<table><thead><tr>{head}<th>Last edited</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _cell(ws: Workspace, page: Page, prop: PropertySchema, person: User) -> str:
    shown = _shown(ws, render_value(prop, page, ws.user_table))
    content = escape(shown) if shown else '<span class="empty">Empty</span>'
    if prop.type in EDITABLE_TYPES:
        href = f"{UI_PATH}pages/{page.id}/edit?{urlencode({'property': prop.id, 'as': person.id})}"
        content = f'<a class="cell" href="{escape(href)}">{content}</a>'
    return f'<td data-property="{escape(prop.name)}">{content}</td>'


def _shown(ws: Workspace, rendered: dict[str, Any]) -> str:
    """A value in its read shape (a property's, a formula's or rollup's result) as plain text."""
    kind = rendered["type"]
    value = rendered[kind]
    if kind in ("title", "rich_text"):
        return plain_text(value)
    if kind in ("select", "status"):
        return value["name"] if value else ""
    if kind in ("multi_select", "files"):
        return ", ".join(item["name"] for item in value)
    if kind == "people":
        return ", ".join(_user_name(ws, user["id"]) for user in value)
    if kind in ("created_by", "last_edited_by"):
        return _user_name(ws, value["id"])
    if kind == "relation":
        return ", ".join(_related_title(ws, ref["id"]) for ref in value)
    if kind == "date":
        return "" if value is None else value["start"] + (f" → {value['end']}" if value["end"] else "")
    if kind in ("checkbox", "boolean"):
        return "☑" if value else "☐"
    if kind == "number":
        return _number_text(value)
    if kind == "unique_id":
        return f"{value['prefix']}-{value['number']}" if value["prefix"] else str(value["number"])
    if kind in ("formula", "rollup"):
        return _shown(ws, value)
    if kind == "array":
        return ", ".join(_shown(ws, item) for item in value)
    return "" if value is None else str(value)  # email, url, phone_number, string, times


def _user_name(ws: Workspace, user_id: str) -> str:
    user = ws.user_table.get(user_id)
    return user.name if user is not None else user_id


def _related_title(ws: Workspace, page_id: str) -> str:
    page = ws.pages.get(page_id)
    return page_title(ws.source_of(page), page) if page is not None else page_id


def _editor(ws: Workspace, page: Page, prop: PropertySchema, person: User, form: Form, error: str | None) -> str:
    ds = ws.source_of(page)
    people = "".join(
        f'<option value="{user.id}"{" selected" if user is person else ""}>{escape(user.name)}</option>'
        for user in ws.people.values()
    )
    return (
        f'<p><a href="{escape(_table_href(ds, person))}">{escape(ds.title)}</a></p>'
        f"<h1>{escape(prop.name)}</h1>"
        f"<p>of <strong>{escape(page_title(ds, page))}</strong> ({escape(prop.type)})</p>"
        + (_error(error) if error is not None else "")
        + f'<form method="post" action="{UI_PATH}pages/{page.id}">'
        f'<input type="hidden" name="property" value="{escape(prop.id)}">'
        f"{_widget(ws, prop, form)}"
        f'<label>Edit as <select name="user">{people}</select></label>'
        '<button type="submit">Save</button></form>'
    )


def _widget(ws: Workspace, prop: PropertySchema, form: Form) -> str:
    """The input for one property type, filled from `form`."""
    kind, text = prop.type, escape(_first(form, "value"))
    if kind == "rich_text":
        return f'<label>Value <textarea name="value" rows="4" cols="60">{text}</textarea></label>'
    if kind == "select":
        options = "".join(f'<option value="{escape(option.name)}">' for option in prop.options)
        return (
            f'<label>Option <input name="value" value="{text}" list="options" autocomplete="off"></label>'
            f'<datalist id="options">{options}</datalist>'
        )
    if kind == "status":
        choices = "".join(
            f'<option value="{escape(o.name)}"{" selected" if o.name == _first(form, "value") else ""}>{escape(o.name)}</option>'
            for o in prop.options
        )
        return f'<label>Status <select name="value"><option value="">Empty</option>{choices}</select></label>'
    if kind == "multi_select":
        chosen = set(form.get("option", []))
        boxes = "".join(_checkbox("option", o.name, o.name, o.name in chosen) for o in prop.options)
        new = escape(_first(form, "new_option"))
        return f'{boxes}<label>New option <input name="new_option" value="{new}"></label>'
    if kind == "people":
        chosen = set(form.get("person", []))
        return "".join(_checkbox("person", user.id, user.name, user.id in chosen) for user in ws.users())
    if kind == "date":
        start, end = escape(_first(form, "start")), escape(_first(form, "end"))
        return (
            f'<label>Start <input name="start" value="{start}" placeholder="2027-01-31 or 2027-01-31T09:30:00Z"></label>'
            f'<label>End <input name="end" value="{end}" placeholder="optional"></label>'
        )
    if kind == "checkbox":
        return _checkbox("checked", "on", prop.name, "checked" in form)
    return f'<label>Value <input name="value" value="{text}" size="60"></label>'  # title, number, email, url, phone


def _checkbox(name: str, value: str, label: str, checked: bool) -> str:
    return (
        f'<label><input type="checkbox" name="{name}" value="{escape(value)}"{" checked" if checked else ""}> '
        f"{escape(label)}</label>"
    )
