"""The HTML of the sandbox's "Notion UI" (see `ui`): the index of data sources, a data source's
table, and the editor of one cell, every value shown HTML-escaped."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from starlette.responses import HTMLResponse

from crm_pipeline.emulation.clock import iso_minute

from .model import DataSource, Page, PropertySchema, User
from .properties import plain_text, render_value
from .render import page_title
from .state import Workspace

UI_PATH = "/ui/"
"""Where the pages are served: the index of data sources."""
EDITABLE_TYPES = frozenset(
    ("title", "rich_text", "number", "select", "status", "multi_select", "date", "checkbox")
    + ("email", "url", "phone_number", "people")
)
Form = dict[str, list[str]]  # field name -> its values, as a browser posts them

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


def first(form: Form, name: str) -> str:
    """A field's first value; empty when the form lacks it (an unchecked box, an empty choice)."""
    return (form.get(name) or [""])[0]


def number_text(value: Any) -> str:
    """A number as the editor shows it: a whole double without its ``.0``."""
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def document(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · Sandbox Notion</title>'
        f"<style>{_STYLE}</style></head><body>{body}</body></html>",
        status_code=status,
    )


def alert(message: str) -> str:
    return f'<p class="error" role="alert">{escape(message)}</p>'


def table_href(ds: DataSource, person: User) -> str:
    return f"{UI_PATH}data_sources/{ds.id}?{urlencode({'as': person.id})}"


def index_body(ws: Workspace) -> str:
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


def table_body(ws: Workspace, ds: DataSource, person: User) -> str:
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
        return number_text(value)
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


def editor_body(ws: Workspace, page: Page, prop: PropertySchema, person: User, form: Form, error: str | None) -> str:
    ds = ws.source_of(page)
    people = "".join(
        f'<option value="{user.id}"{" selected" if user is person else ""}>{escape(user.name)}</option>'
        for user in ws.people.values()
    )
    return (
        f'<p><a href="{escape(table_href(ds, person))}">{escape(ds.title)}</a></p>'
        f"<h1>{escape(prop.name)}</h1>"
        f"<p>of <strong>{escape(page_title(ds, page))}</strong> ({escape(prop.type)})</p>"
        + (alert(error) if error is not None else "")
        + f'<form method="post" action="{UI_PATH}pages/{page.id}">'
        f'<input type="hidden" name="property" value="{escape(prop.id)}">'
        f"{_widget(ws, prop, form)}"
        f'<label>Edit as <select name="user">{people}</select></label>'
        '<button type="submit">Save</button></form>'
    )


def _widget(ws: Workspace, prop: PropertySchema, form: Form) -> str:
    """The input for one property type, filled from `form`."""
    kind, text = prop.type, escape(first(form, "value"))
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
            f'<option value="{escape(o.name)}"{" selected" if o.name == first(form, "value") else ""}>{escape(o.name)}</option>'
            for o in prop.options
        )
        return f'<label>Status <select name="value"><option value="">Empty</option>{choices}</select></label>'
    if kind == "multi_select":
        chosen = set(form.get("option", []))
        boxes = "".join(_checkbox("option", o.name, o.name, o.name in chosen) for o in prop.options)
        new = escape(first(form, "new_option"))
        return f'{boxes}<label>New option <input name="new_option" value="{new}"></label>'
    if kind == "people":
        chosen = set(form.get("person", []))
        return "".join(_checkbox("person", user.id, user.name, user.id in chosen) for user in ws.users())
    if kind == "date":
        start, end = escape(first(form, "start")), escape(first(form, "end"))
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
