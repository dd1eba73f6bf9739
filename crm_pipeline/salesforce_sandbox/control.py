"""The ``/_salesforce`` control surface: reset, settings, the org's setup, tokens, faults, clock,
stats, and what only people, automation or Salesforce itself do (edit as a person in the UI, touch
a record, restore it from the Recycle Bin, purge the delete log, fail a record's next write, hold a
transaction in flight). Each handler turns a ``Control`` into a JSON body; ``CONTROL_ROUTES`` names
the handler of each path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from starlette.routing import Route

from crm_pipeline.emulation.control import Latency
from crm_pipeline.emulation.errors import BadRequest
from crm_pipeline.emulation.routes import ControlCall, shared_control_routes, table_routes
from crm_pipeline.emulation.runtime import serve_control

from .errors import SalesforceError, bad_request, not_found
from .ids import normal_id
from .org import InjectedError
from .render import record_json
from .runtime import FAULT_KINDS, SalesforceSandbox
from .state import HUMAN_USER, INTEGRATION_USER, Record
from .values import parse_datetime

Control = ControlCall[SalesforceSandbox]
ControlHandler = Callable[[Control], Any]


def configure(call: Control) -> Any:
    """PUT changes the allowance, page cap, concurrency gate and latency; each answers them."""
    sandbox, body = call.sandbox, call.body
    if call.method == "PUT":
        daily = sandbox.allowance(int(body.get("daily_api_max", sandbox.daily.limit)))
        latency = Latency(
            float(body.get("latency_ms", sandbox.latency.fixed_ms)),
            float(body.get("jitter_ms", sandbox.latency.jitter_ms)),
        )
        if "used" in body:  # as if that many requests were made just now
            for _ in range(min(int(body["used"]), daily.limit)):
                daily.check("org")
        sandbox.daily, sandbox.latency = daily, latency
        sandbox.query_page_cap = int(body.get("query_page_cap", sandbox.query_page_cap))
        sandbox.gate.limit = int(body.get("concurrent_long_running_limit", sandbox.gate.limit))
        sandbox.gate.simulated = int(body.get("long_running_elsewhere", sandbox.gate.simulated))
    return {
        "daily_api_max": sandbox.daily.limit,
        "used": sandbox.daily.limit - sandbox.daily.remaining("org"),
        "query_page_cap": sandbox.query_page_cap,
        "concurrent_long_running_limit": sandbox.gate.limit,
        "long_running_elsewhere": sandbox.gate.simulated,
        "latency_ms": sandbox.latency.fixed_ms,
        "jitter_ms": sandbox.latency.jitter_ms,
    }


def setup(call: Control) -> Any:
    """PUT replaces the parts of the org's setup it names; each answers the whole setup."""
    org = call.sandbox.org
    if call.method == "PUT":
        before = org.state.setup.to_json()
        org.state.setup.change(call.body)
        org.setup_changed()
        try:
            for automation in org.state.setup.automations:
                org.automation_values(automation)
        except SalesforceError:
            org.state.setup.change(before)
            org.setup_changed()
            raise
    return org.state.setup.to_json()


def tokens(call: Control) -> Any:
    """POST grants a token (to ``user_id``, the integration user unless named); DELETE with a
    token expires it (401 INVALID_SESSION_ID from then on)."""
    sandbox = call.sandbox
    if call.method == "POST":
        sandbox.tokens[str(call.body["token"])] = _user(call, call.body.get("user_id"), INTEGRATION_USER)
    elif call.method == "DELETE":
        sandbox.tokens.pop(call.params["token"], None)
    return {"tokens": len(sandbox.tokens)}


def users(call: Control) -> Any:
    org = call.sandbox.org
    return {"records": [_printed(org.visible(r), r) for r in org.state.records["User"].values()]}


def _user(call: Control, raw: Any, default: str) -> str:
    user_id = normal_id(str(raw)) if raw is not None else default
    if user_id is None or user_id not in call.sandbox.org.state.records["User"]:
        raise bad_request("INVALID_CROSS_REFERENCE_KEY", f"no such user: {raw}")
    return user_id


def _printed(values: dict[str, Any], record: Record) -> dict[str, Any]:
    return record_json(record.object_name, values, "62.0")


def _at(call: Control) -> datetime | None:
    raw = call.body.get("at")
    moment = parse_datetime(str(raw)) if raw is not None else None
    if raw is not None and moment is None:
        raise BadRequest(f"at: an ISO 8601 moment with a zone, not {raw!r}")
    return moment


def _record(call: Control) -> Record:
    org = call.sandbox.org
    object_name = org.schema.object_name(call.params["object"])
    if object_name is None:
        raise not_found()
    return org.get(object_name, call.params["record_id"], deleted_ok=True)


def all_records(call: Control) -> Any:
    """Every record of the object, deleted ones too, with every field (hidden ones as well)."""
    org = call.sandbox.org
    object_name = org.schema.object_name(call.params["object"]) or ""
    records = org.state.records.get(object_name, {}).values()
    return {"records": [_printed(dict(r.values), r) for r in sorted(records, key=lambda r: r.id)]}


def person_create(call: Control) -> Any:
    """A person creates a record in Salesforce's UI (``user_id``: the human user unless named)."""
    org = call.sandbox.org
    object_name = org.schema.object_name(call.params["object"]) or ""
    user_id = _user(call, call.body.get("user_id"), HUMAN_USER)
    record = org.create(object_name, call.body.get("fields") or {}, user_id, _at(call))
    return _printed(dict(record.values), record)


def person_edit(call: Control) -> Any:
    """A person edits the record in the UI, stamped now or ``at`` (an earlier stamp makes a write
    that commits behind a reader's watermark)."""
    record = _record(call)
    user_id = _user(call, call.body.get("user_id"), HUMAN_USER)
    call.sandbox.org.update(record, call.body.get("fields") or {}, user_id, _at(call))
    return _printed(dict(record.values), record)


def touch(call: Control) -> Any:
    """A system update: SystemModstamp moves, LastModifiedDate and LastModifiedById stay."""
    record = _record(call)
    call.sandbox.org.touch(record, _at(call))
    return _printed(dict(record.values), record)


def products(call: Control) -> Any:
    """PUT ``{amount}``: the opportunity has line items summing to ``amount`` (null: none)."""
    record = _record(call)
    amount = call.body.get("amount")
    call.sandbox.org.set_products(record, None if amount is None else Decimal(str(amount)))
    return _printed(dict(record.values), record)


def undelete(call: Control) -> Any:
    record = call.sandbox.org.undelete(_record(call))
    return _printed(dict(record.values), record)


def record_errors(call: Control) -> Any:
    """POST: the next ``count`` writes to the record with this Id or Sync_Key__c (``match``) fail
    with ``errorCode`` (UNABLE_TO_LOCK_ROW unless named); DELETE clears them."""
    org, body = call.sandbox.org, call.body
    if call.method == "POST":
        code = str(body.get("errorCode", "UNABLE_TO_LOCK_ROW"))
        match = str(body["match"])
        message = str(body.get("message") or f"unable to obtain exclusive access to this record or 1 records: {match}")
        error = SalesforceError(400, code, message, [])
        org.injected.append(InjectedError(normal_id(match) or match, error, int(body.get("count", 1))))
    elif call.method == "DELETE":
        org.injected.clear()
    return {
        "pending": [{"match": i.match, "errorCode": i.error.error_code, "count": i.remaining} for i in org.injected]
    }


def purge_delete_log(call: Control) -> Any:
    """Salesforce's background purge: the delete log forgets deletions before ``before``."""
    org = call.sandbox.org
    before = parse_datetime(str(call.body.get("before")))
    if before is None:
        raise BadRequest("before: an ISO 8601 moment with a zone")
    org.state.deletions = [d for d in org.state.deletions if d.at >= before]
    org.state.purged_until = before
    org.revision += 1
    return {"deletions": len(org.state.deletions)}


def coverage(call: Control) -> Any:
    """PUT ``{held_at}``: a transaction started then and not yet committed holds
    ``latestDateCovered`` there (null: none)."""
    if call.method == "PUT":
        raw = call.body.get("held_at")
        call.sandbox.held_coverage = None if raw is None else parse_datetime(str(raw))
    held = call.sandbox.held_coverage
    return {"held_at": None if held is None else held.isoformat()}


CONTROL_ROUTES: list[tuple[str, list[str], ControlHandler]] = [
    *shared_control_routes(FAULT_KINDS, "/services/data/*"),
    ("/config", ["GET", "PUT"], configure),
    ("/setup", ["GET", "PUT"], setup),
    ("/tokens", ["POST"], tokens),
    ("/tokens/{token}", ["DELETE"], tokens),
    ("/users", ["GET"], users),
    ("/records/{object}", ["GET"], all_records),
    ("/records/{object}", ["POST"], person_create),
    ("/records/{object}/{record_id}", ["PATCH"], person_edit),
    ("/records/{object}/{record_id}/touch", ["POST"], touch),
    ("/records/{object}/{record_id}/undelete", ["POST"], undelete),
    ("/records/{object}/{record_id}/products", ["PUT"], products),
    ("/record-errors", ["POST", "DELETE"], record_errors),
    ("/delete-log/purge", ["POST"], purge_delete_log),
    ("/coverage", ["GET", "PUT"], coverage),
]
"""Each path under ``/_salesforce``, its methods and its handler."""


def control_routes() -> list[Route]:
    return table_routes("/_salesforce", CONTROL_ROUTES, serve_control)
