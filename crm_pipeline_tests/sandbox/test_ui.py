"""The `/ui/` pages over plain HTTP: what they show (escaped), and that a saved cell is the API's
own page update made by the chosen person, validation and timestamps included."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from notion_client import AsyncClient

from crm_pipeline.sandbox import UI_PATH, RunningSandbox, SandboxControl

pytestmark = pytest.mark.integration

HOSTILE = "<script>alert('x')</script> & \"quoted\""
SEED: dict[str, Any] = {
    "users": [
        {"name": "Ana Ruiz", "email": "ana@sales.example"},
        {"name": "Ben <b>Okafor</b>", "email": "ben@x.example"},
    ],
    "databases": [
        {
            "title": "Pipeline <i>2027</i>",
            "properties": {
                "Deal": {"title": {}},
                "Notes": {"rich_text": {}},
                "Value": {"number": {}},
                "Stage": {"select": {"options": [{"name": "Lead"}, {"name": "Won"}]}},
                "Status": {"status": {"options": [{"name": "Open"}, {"name": "Done"}]}},
                "Tags": {"multi_select": {"options": [{"name": "VIP"}, {"name": "EMEA"}]}},
                "Close": {"date": {}},
                "Hot": {"checkbox": {}},
                "Email": {"email": {}},
                "Website": {"url": {}},
                "Phone": {"phone_number": {}},
                "Owner": {"people": {}},
                "Weighted": {"formula": {"expression": 'prop("Value") * 0.5'}},
                "Edited by": {"last_edited_by": {}},
            },
            "pages": [
                {"Deal": "Acme renewal", "Notes": HOSTILE, "Value": 1200, "Stage": "Lead", "Tags": ["VIP"]},
                {"Deal": "Globex pilot", "Status": "Open", "Hot": True, "Owner": ["Ana Ruiz"]},
            ],
        }
    ],
}


@pytest.fixture
def pipeline(control: SandboxControl, sandbox: RunningSandbox) -> dict[str, Any]:
    return control.seed(SEED)[0]


@pytest_asyncio.fixture
async def browser(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP as a browser sends it: no token, no Notion-Version."""
    async with httpx.AsyncClient(base_url=sandbox.base_url) as client:
        yield client


def page_named(control: SandboxControl, data_source_id: str, title: str) -> dict[str, Any]:
    [page] = [
        page
        for page in control.all_pages(data_source_id)
        if "".join(t["plain_text"] for t in page["properties"]["Deal"]["title"]) == title
    ]
    return page


def person(control: SandboxControl, name: str) -> str:
    [user_id] = [user["id"] for user in control.users() if user["name"] == name]
    return str(user_id)


def edit_link(table: str, page_id: str, prop: str) -> str:
    """The link a person clicks in the table: the cell of `prop` in the row of `page_id`."""
    row = re.search(rf'<tr id="{page_id}">(.*?)</tr>', table, re.S)
    assert row is not None, f"no row for {page_id}"
    cell = re.search(rf'<td data-property="{re.escape(prop)}"><a class="cell" href="([^"]+)"', row.group(1))
    assert cell is not None, f"no editable {prop} cell"
    return cell.group(1).replace("&amp;", "&")


async def save(
    browser: httpx.AsyncClient, page_id: str, prop_id: str, user_id: str, **fields: str | list[str]
) -> httpx.Response:
    """Post the cell editor's form as a browser does (a list is a field checked several times)."""
    return await browser.post(f"{UI_PATH}pages/{page_id}", data={"property": prop_id, "user": user_id, **fields})


async def test_the_index_lists_data_sources_and_a_table_lists_live_pages(
    browser: httpx.AsyncClient, control: SandboxControl, pipeline: dict[str, Any]
) -> None:
    ds_id = pipeline["data_source_id"]
    trashed = page_named(control, ds_id, "Globex pilot")
    control.human_update_page(trashed["id"], {"in_trash": True})

    index = await browser.get(UI_PATH)
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert f'href="{UI_PATH}data_sources/{ds_id}"' in index.text
    table = (await browser.get(f"{UI_PATH}data_sources/{ds_id}")).text
    acme = page_named(control, ds_id, "Acme renewal")
    assert f'<tr id="{acme["id"]}">' in table and f'<tr id="{trashed["id"]}">' not in table
    assert '<td data-property="Value"><a class="cell"' in table  # editable
    assert '<td data-property="Weighted"><span class="empty">Empty</span></td>' in table  # read-only
    # No token needed, and the pages are not Notion API traffic.
    assert (await browser.get(UI_PATH.rstrip("/"))).headers["location"] == UI_PATH
    assert control.stats()["total"] == 0


async def test_every_value_is_escaped(
    browser: httpx.AsyncClient, control: SandboxControl, pipeline: dict[str, Any]
) -> None:
    ds_id = pipeline["data_source_id"]
    acme = page_named(control, ds_id, "Acme renewal")
    table = (await browser.get(f"{UI_PATH}data_sources/{ds_id}")).text
    editor = (await browser.get(edit_link(table, acme["id"], "Notes"))).text
    for html in (table, editor, (await browser.get(UI_PATH)).text):
        assert "<script>" not in html and "<i>2027</i>" not in html and "<b>Okafor</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;" in table
    assert "Pipeline &lt;i&gt;2027&lt;/i&gt;" in table
    assert "Ben &lt;b&gt;Okafor&lt;/b&gt;</option>" in editor
    assert '<textarea name="value" rows="4" cols="60">&lt;script&gt;' in editor


async def test_a_saved_cell_is_a_page_update_by_the_chosen_person_at_the_sandbox_clock(
    browser: httpx.AsyncClient, control: SandboxControl, notion: AsyncClient, pipeline: dict[str, Any]
) -> None:
    ds_id = pipeline["data_source_id"]
    acme = page_named(control, ds_id, "Acme renewal")
    ben = person(control, "Ben <b>Okafor</b>")
    control.set_clock(datetime(2027, 3, 4, 10, 15, 42, tzinfo=UTC))
    table = (await browser.get(f"{UI_PATH}data_sources/{ds_id}")).text
    link = edit_link(table, acme["id"], "Value")
    editor = (await browser.get(link)).text
    # The chooser offers the workspace's people, the first one chosen unless the link names another.
    assert re.search(r'<option value="[^"]+" selected>Sandbox Human</option>', editor)
    assert 'name="value" value="1200"' in editor

    saved = await save(browser, acme["id"], parse_qs(urlsplit(link).query)["property"][0], ben, value="2500.5")

    assert saved.status_code == 303
    assert saved.headers["location"] == f"{UI_PATH}data_sources/{ds_id}?as={ben}#{acme['id']}"
    page: Any = await notion.pages.retrieve(acme["id"])
    assert page["properties"]["Value"]["number"] == 2500.5
    assert page["last_edited_by"] == {"object": "user", "id": ben}
    assert page["last_edited_time"] == "2027-03-04T10:15:00.000Z"
    assert page["properties"]["Edited by"]["last_edited_by"]["id"] == ben
    shown = (await browser.get(saved.headers["location"])).text
    assert "2027-03-04T10:15:00.000Z by Ben &lt;b&gt;Okafor&lt;/b&gt;" in shown
    assert re.search(
        r'<option value="[^"]+" selected>Ben &lt;b&gt;Okafor&lt;/b&gt;</option>',
        (await browser.get(edit_link(shown, acme["id"], "Notes"))).text,
    )


FORM_WRITES: list[tuple[str, dict[str, str | list[str]], Any]] = [
    ("Deal", {"value": "Acme 2028"}, ["Acme 2028"]),
    ("Notes", {"value": "Call on Monday"}, ["Call on Monday"]),
    ("Notes", {"value": ""}, []),
    ("Value", {"value": "-7"}, -7),
    ("Value", {"value": " 1.5e3 "}, 1500),
    ("Value", {"value": ""}, None),
    ("Stage", {"value": "Won"}, "Won"),
    ("Stage", {"value": "Churn risk"}, "Churn risk"),  # a new option, as typing one in Notion makes it
    ("Stage", {"value": ""}, None),
    ("Status", {"value": "Done"}, "Done"),
    ("Tags", {"option": ["VIP", "EMEA"], "new_option": "Renewal"}, ["VIP", "EMEA", "Renewal"]),
    ("Tags", {}, []),
    (
        "Close",
        {"start": "2027-05-01", "end": "2027-05-03"},
        {"start": "2027-05-01", "end": "2027-05-03", "time_zone": None},
    ),
    ("Close", {"start": "", "end": ""}, None),
    ("Hot", {"checked": "on"}, True),
    ("Hot", {}, False),
    ("Email", {"value": "ana@acme.example"}, "ana@acme.example"),
    ("Website", {"value": "https://acme.example"}, "https://acme.example"),
    ("Phone", {"value": "+1 555 0100"}, "+1 555 0100"),
    ("Phone", {"value": " "}, None),
]


def _read(prop: dict[str, Any]) -> Any:
    """A property value reduced to what the form sets."""
    kind = prop["type"]
    value = prop[kind]
    if kind in ("title", "rich_text"):
        return [item["plain_text"] for item in value]
    if kind in ("select", "status"):
        return value and value["name"]
    if kind == "multi_select":
        return [option["name"] for option in value]
    if kind == "people":
        return [user["id"] for user in value]
    return value


@pytest.mark.parametrize(("name", "fields", "expected"), FORM_WRITES)
async def test_each_editable_type_is_written_as_the_api_reads_it(
    browser: httpx.AsyncClient,
    control: SandboxControl,
    notion: AsyncClient,
    pipeline: dict[str, Any],
    name: str,
    fields: dict[str, str | list[str]],
    expected: Any,
) -> None:
    acme = page_named(control, pipeline["data_source_id"], "Acme renewal")
    prop_id = acme["properties"][name]["id"]
    response = await save(browser, acme["id"], prop_id, person(control, "Ana Ruiz"), **fields)
    assert response.status_code == 303, response.text
    page: Any = await notion.pages.retrieve(acme["id"])
    assert _read(page["properties"][name]) == expected


async def test_people_are_chosen_among_the_workspace_users(
    browser: httpx.AsyncClient, control: SandboxControl, notion: AsyncClient, pipeline: dict[str, Any]
) -> None:
    globex = page_named(control, pipeline["data_source_id"], "Globex pilot")
    ana, ben = person(control, "Ana Ruiz"), person(control, "Ben <b>Okafor</b>")
    response = await save(browser, globex["id"], globex["properties"]["Owner"]["id"], ana, person=[ben, ana])
    assert response.status_code == 303
    page: Any = await notion.pages.retrieve(globex["id"])
    assert _read(page["properties"]["Owner"]) == [ben, ana]


@pytest.mark.parametrize(
    ("name", "fields", "message", "kept"),
    [
        (
            "Value",
            {"value": "twelve"},
            "body failed validation: body.properties.Value.number should be a number or `null`, instead was `&quot;twelve&quot;`.",
            'name="value" value="twelve"',
        ),
        (  # beyond a double: what a JSON body could not carry either
            "Value",
            {"value": "1e400"},
            "body failed validation: body.properties.Value.number should be a number or `null`, instead was `&quot;1e400&quot;`.",
            'name="value" value="1e400"',
        ),
        (
            "Close",
            {"start": "next week", "end": "2027-05-03"},
            "body failed validation: body.properties.Close.date.start should be a valid ISO 8601 date string",
            'name="start" value="next week"',
        ),
        (
            "Email",
            {"value": "a" * 201},
            "body failed validation: body.properties.Email.email.length should be ≤ `200`, instead was `201`.",
            f'name="value" value="{"a" * 201}"',
        ),
        (
            "Tags",
            {"option": "VIP", "new_option": "A, B"},
            "Invalid select option for property Tags: option names can&#x27;t contain commas (&#x27;A, B&#x27;).",
            'name="new_option" value="A, B"',
        ),
        (  # a crafted post: the editor only offers the existing statuses
            "Status",
            {"value": "Someday"},
            "Invalid status option &#x27;Someday&#x27; for property Status.",
            '<select name="value"><option value="">Empty</option><option value="Open">Open</option>',
        ),
    ],
)
async def test_bad_input_shows_the_apis_validation_message_and_changes_nothing(
    browser: httpx.AsyncClient,
    control: SandboxControl,
    notion: AsyncClient,
    pipeline: dict[str, Any],
    name: str,
    fields: dict[str, str],
    message: str,
    kept: str,
) -> None:
    acme = page_named(control, pipeline["data_source_id"], "Acme renewal")
    before: Any = await notion.pages.retrieve(acme["id"])

    response = await save(browser, acme["id"], acme["properties"][name]["id"], person(control, "Ana Ruiz"), **fields)

    assert response.status_code == 400 and response.headers["content-type"].startswith("text/html")
    assert '<p class="error" role="alert">' in response.text and message in response.text
    assert kept in response.text  # the editor comes back as the person filled it in
    after: Any = await notion.pages.retrieve(acme["id"])
    assert after == {**before, "request_id": after["request_id"]}


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        ("pages/{page}", [("property", "Weighted"), ("user", "{ana}")], 400, "Weighted is a formula property"),
        (
            "pages/{page}",
            [("property", "Nope"), ("user", "{ana}")],
            400,
            "Could not find property with name or id: Nope",
        ),
        ("pages/{page}", [("property", "Value"), ("user", "{bot}")], 400, "is none of its people"),
        ("pages/{page}", [("property", "Value")], 400, "is none of its people"),
        ("pages/0badc0de-0000-4000-8000-000000000000", [("property", "Value")], 404, "Could not find page"),
        ("pages/not-an-id", [("property", "Value")], 400, "should be a valid uuid"),
    ],
)
async def test_a_save_that_cannot_be_made_is_an_error_page_not_a_500(
    browser: httpx.AsyncClient,
    control: SandboxControl,
    pipeline: dict[str, Any],
    path: str,
    form: list[tuple[str, str]],
    status: int,
    message: str,
) -> None:
    acme = page_named(control, pipeline["data_source_id"], "Acme renewal")
    bot = next(user["id"] for user in control.users() if user["type"] == "bot")
    names = {"page": acme["id"], "ana": person(control, "Ana Ruiz"), "bot": bot}
    filled = {key: value.format(**names) for key, value in form}
    response = await browser.post(UI_PATH + path.format(**names), data=filled)
    assert response.status_code == status and message in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_unknown_ids_and_paths_and_undecodable_forms_are_error_pages(
    browser: httpx.AsyncClient, control: SandboxControl, pipeline: dict[str, Any]
) -> None:
    acme = page_named(control, pipeline["data_source_id"], "Acme renewal")
    missing = await browser.get(f"{UI_PATH}data_sources/0badc0de-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "Could not find data_source" in missing.text
    assert (await browser.get(f"{UI_PATH}nowhere")).status_code == 404
    formula = await browser.get(f"{UI_PATH}pages/{acme['id']}/edit?property=Weighted")
    assert formula.status_code == 400 and "Weighted is a formula property" in formula.text
    not_utf8 = await browser.post(f"{UI_PATH}pages/{acme['id']}", content=b"property=Value&value=%ED%A0%80")
    assert not_utf8.status_code == 400 and "not UTF-8" in not_utf8.text
