"""``query/``, ``queryAll/`` and their continuations: SOQL (crm_pipeline.salesforce_sandbox.soql)
over the org's rows, answered a page at a time with ``totalSize``, ``done`` and a
``nextRecordsUrl`` that is a path (``…/query/{locator}-{offset}``, for queryAll too). Only
queryAll sees records in the Recycle Bin. A page holds the ``Sforce-Query-Options`` batch size
(200 to 2,000, default 2,000), or fewer when the sandbox is set to answer with short pages."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from typing import Any

from .errors import bad_request
from .ids import make_id
from .render import record_json
from .runtime import Call
from .schema import PREFIXES
from .soql import SoqlError, parse_soql
from .soql_run import bind, execute
from .state import INTEGRATION_USER, SETUP_MOMENT

DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
_BATCH = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def query(call: Call) -> Any:
    return _first_page(call, include_deleted=False)


def query_all(call: Call) -> Any:
    return _first_page(call, include_deleted=True)


def query_more(call: Call) -> Any:
    locator, _, offset = call.params["cursor"].partition("-")
    cursor = call.sandbox.cursors.get(locator, call.sandbox.clock.now_ms())
    if not offset.isdigit() or int(offset) > len(cursor.records):
        raise bad_request("INVALID_QUERY_LOCATOR", "invalid query locator")
    return _page(call, cursor.records, int(offset), locator)


def _first_page(call: Call, *, include_deleted: bool) -> Any:
    text = call.query.get("q")
    if not text:
        raise bad_request("MALFORMED_QUERY", "A query string has to be specified")
    try:
        bound = bind(parse_soql(text), call.org.schema.types())
    except SoqlError as error:
        raise bad_request(error.error_code, error.message) from None
    with_id = "Id" in bound.fields or bound.count_only
    run = bound if with_id else replace(bound, fields=(*bound.fields, "Id"))  # every record's url names it
    total, rows = execute(run, rows_of(call, bound.object_name, include_deleted))
    if bound.count_only:
        return {"totalSize": total, "done": True, "records": []}
    records = [_printed(call, bound.object_name, row, with_id) for row in rows]
    locator = None
    if len(records) > _page_size(call):
        locator = call.sandbox.cursors.open(records, call.sandbox.clock.now_ms())
    return _page(call, records, 0, locator)


def _printed(call: Call, object_name: str, row: dict[str, Any], with_id: bool) -> dict[str, Any]:
    record_id = row["Id"] if with_id else row.pop("Id")
    return record_json(object_name, row, call.version, record_id)


def _page(call: Call, records: list[dict[str, Any]], start: int, locator: str | None) -> dict[str, Any]:
    end = start + _page_size(call)
    body: dict[str, Any] = {"totalSize": len(records), "done": end >= len(records), "records": records[start:end]}
    if not body["done"]:
        body["nextRecordsUrl"] = f"{call.base()}/query/{locator}-{end}"
    return body


def _page_size(call: Call) -> int:
    match = _BATCH.search(call.headers.get("sforce-query-options", ""))
    size = min(max(int(match.group(1)), MIN_BATCH), MAX_BATCH) if match else DEFAULT_BATCH
    cap = call.sandbox.query_page_cap
    return min(size, cap) if cap else size


def rows_of(call: Call, object_name: str, include_deleted: bool) -> list[dict[str, Any]]:
    """The object's rows as SOQL reads them (only fields the integration user sees)."""
    org = call.org
    if object_name == "OpportunityStage":
        return [stage_row(index, call) for index in range(len(org.state.setup.stages))]
    records = org.state.records[object_name].values()
    return [org.visible(r) for r in records if include_deleted or not r.deleted]


def stage_row(index: int, call: Call) -> dict[str, Any]:
    stage = call.org.state.setup.stages[index]
    audit = {"CreatedDate": SETUP_MOMENT, "CreatedById": INTEGRATION_USER, "LastModifiedDate": SETUP_MOMENT}
    audit |= {"LastModifiedById": INTEGRATION_USER, "SystemModstamp": SETUP_MOMENT}
    return {
        "Id": make_id(PREFIXES["OpportunityStage"], index + 1),
        "IsDeleted": False,
        "ApiName": stage.api_name,
        "MasterLabel": stage.api_name,
        "DefaultProbability": Decimal(stage.probability),
        "ForecastCategoryName": stage.forecast_category,
        "IsActive": stage.active,
        "IsClosed": stage.closed,
        "IsWon": stage.won,
        "SortOrder": index + 1,
        **audit,
    }
