"""One Salesforce org's behaviour on writes: field checks in Salesforce's order and codes, the
stage cascade, audit fields stamped to the second from the settable clock, the unique external
id, validation rules, field history, Task roll-ups onto the opportunity, automation after API
writes, and the Recycle Bin. Everything a write checks is checked before anything changes, so a
failed write leaves no trace."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_pipeline.emulation.clock import Clock

from .errors import SalesforceError, bad_request, entity_is_deleted, invalid_field, not_found
from .history import history_rows, stage_history_row
from .ids import normal_id
from .schema import FieldSpec, Schema
from .setup import SYNC_KEY, Automation
from .state import AUTOMATED_PROCESS, Deletion, OrgState, Record
from .values import input_value

CENTS = Decimal("0.01")
READ_ONLY_MESSAGE = (
    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is "
    "read/write for your profile or permission set."
)


@dataclass
class InjectedError:
    """The next ``remaining`` writes to the record with this Id or Sync_Key__c fail with it."""

    match: str
    error: SalesforceError
    remaining: int


class Org:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.clear()

    def clear(self) -> None:
        self.state = OrgState()
        self.schema = Schema(self.state.setup)
        self.injected: list[InjectedError] = []
        self.revision = getattr(self, "revision", 0) + 1  # never back to a saved revision

    def restore(self, state: OrgState) -> None:
        """Replace the org's state (a loaded state file, a rolled-back transaction)."""
        self.state = state
        self.schema = Schema(state.setup)
        self.revision += 1

    def snapshot(self) -> dict[str, Any]:
        """The org's state as the state file keeps it."""
        return self.state.snapshot()

    def load(self, document: dict[str, Any]) -> None:
        """Replace the org's state with a ``snapshot``."""
        self.restore(OrgState.load(document))

    def setup_changed(self) -> None:
        self.schema = Schema(self.state.setup)
        self.revision += 1

    def now(self) -> datetime:
        """The clock's moment to the second: Salesforce keeps no milliseconds."""
        ms = self.clock.now_ms()
        return datetime.fromtimestamp(ms // 1000, tz=UTC)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All of the block's writes or, when it raises, none of them (API writes never change the
        setup, so the copy shares it)."""
        saved = self.state.copy()
        try:
            yield
        except BaseException:
            self.restore(saved)
            raise

    # --- reading ------------------------------------------------------------------------------------

    def get(self, object_name: str, raw_id: str, *, deleted_ok: bool = False) -> Record:
        """The record by a 15- or 18-character id; one in the Recycle Bin only with ``deleted_ok``."""
        record_id = normal_id(raw_id)
        record = self.state.records[object_name].get(record_id) if record_id else None
        if record is None or (record.deleted and not deleted_ok):
            raise not_found()
        return record

    def by_key(self, value: str) -> list[Record]:
        """Live opportunities holding this Sync_Key__c (case-blind)."""
        ids = self.state.keys.get(value.lower(), set())
        return sorted((self.state.records["Opportunity"][i] for i in ids), key=lambda r: r.id)

    def visible(self, record: Record) -> dict[str, Any]:
        """The record's values the integration user may see."""
        fields = self.schema.fields[record.object_name]
        return {name: record.values.get(name) for name in fields}

    # --- writing ------------------------------------------------------------------------------------

    def create(self, object_name: str, body: Any, user_id: str, at: datetime | None = None) -> Record:
        self._take_injected(body.get(SYNC_KEY) if isinstance(body, dict) and object_name == "Opportunity" else None)
        given = self._checked(object_name, body, creating=True)
        values: dict[str, Any] = {name: None for name in self.schema.fields[object_name]}
        values |= {"IsDeleted": False, "OwnerId": user_id, "HasOpportunityLineItem": False}
        values |= {spec.name: spec.default for spec in self.schema.fields[object_name].values() if spec.default}
        values |= given
        missing = [
            spec.name
            for spec in self.schema.fields[object_name].values()
            if spec.required and values[spec.name] is None
        ]
        if missing:
            raise bad_request("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        self._derive(object_name, values, given, None)
        self._check_record(object_name, values, None)
        stamp = at or self.now()
        record_id = self.state.new_id(object_name)
        values |= {"Id": record_id, "CreatedDate": stamp, "CreatedById": user_id}
        values |= {"LastModifiedDate": stamp, "LastModifiedById": user_id, "SystemModstamp": stamp}
        record = Record(object_name, {k: v for k, v in values.items() if k in self.schema.fields[object_name]})
        self.state.records[object_name][record_id] = record
        self.state.index_key(record, True)
        self._history(record, None, user_id, stamp)
        self._roll_up(record, stamp)
        self.revision += 1
        return record

    def update(self, record: Record, body: Any, user_id: str, at: datetime | None = None) -> Record:
        if record.deleted:
            raise entity_is_deleted()
        self._take_injected(record.id, record.values.get(SYNC_KEY))
        given = self._checked(record.object_name, body, creating=False)
        if record.object_name == "Opportunity" and record.values.get("HasOpportunityLineItem"):
            given.pop("Amount", None)  # the sum of the products: a write is ignored without a word
        values = {**record.values, **given}
        self._derive(record.object_name, values, given, record)
        self._check_record(record.object_name, values, record)
        self._write(record, values, user_id, at or self.now())
        return record

    def _write(self, record: Record, values: dict[str, Any], user_id: str, stamp: datetime) -> None:
        before = dict(record.values)
        self.state.index_key(record, False)
        record.values.update(values)
        record.values |= {"LastModifiedDate": stamp, "LastModifiedById": user_id, "SystemModstamp": stamp}
        self.state.index_key(record, True)
        self._history(record, before, user_id, stamp)
        self._roll_up(record, stamp)
        self.revision += 1

    def delete(self, record: Record) -> None:
        if record.deleted:
            raise entity_is_deleted()
        self._take_injected(record.id, record.values.get(SYNC_KEY))
        stamp = self.now()
        self.state.index_key(record, False)
        record.values |= {"IsDeleted": True, "SystemModstamp": stamp}
        self.state.deletions.append(Deletion(record.object_name, record.id, stamp))
        self.revision += 1

    def undelete(self, record: Record) -> Record:
        """What a person restoring the record from the Recycle Bin does: same Id, new SystemModstamp."""
        if not record.deleted:
            raise bad_request("UNDELETE_FAILED", "Entity is not in the recycle bin", [])
        self._check_record(record.object_name, {**record.values, "IsDeleted": False}, record)
        record.values |= {"IsDeleted": False, "SystemModstamp": self.now()}
        self.state.index_key(record, True)
        self.state.deletions = [d for d in self.state.deletions if d.record_id != record.id]
        self.revision += 1
        return record

    def touch(self, record: Record, at: datetime | None = None) -> None:
        """A system update (a roll-up, a recalculation): SystemModstamp moves, nothing else."""
        record.values["SystemModstamp"] = max(record.values["SystemModstamp"], at or self.now())
        self.revision += 1

    def set_products(self, record: Record, amount: Decimal | None) -> None:
        """Line items added (Amount becomes their sum and API writes to it are ignored) or, with
        None, all removed."""
        record.values["HasOpportunityLineItem"] = amount is not None
        if amount is not None:
            record.values["Amount"] = amount
        self.touch(record)

    def after_api_write(self, record: Record) -> None:
        """Run the setup's automation on an opportunity the API just wrote."""
        if record.object_name != "Opportunity" or record.deleted:
            return
        for automation in self.state.setup.automations:
            stamp = record.values["SystemModstamp"] + timedelta(seconds=automation.delay_seconds)
            if not automation.fields:
                self.touch(record, stamp)
                continue
            given = self.automation_values(automation)
            values = {**record.values, **given}
            self._derive("Opportunity", values, given, record)
            self._write(record, values, automation.user_id or AUTOMATED_PROCESS, stamp)

    def automation_values(self, automation: Automation) -> dict[str, Any]:
        """An automation's field values as stored (checked when the setup takes it)."""
        return self._checked("Opportunity", automation.fields, creating=False)

    # --- checks and derived fields ------------------------------------------------------------------

    def _checked(self, object_name: str, body: Any, *, creating: bool) -> dict[str, Any]:
        """The body's values as stored, by canonical name; unknown, read-only and bad values refused."""
        if not isinstance(body, Mapping):
            raise bad_request("JSON_PARSER_ERROR", f"Cannot deserialize instance of {object_name} from the body")
        specs: list[tuple[FieldSpec, Any]] = []
        for name, raw in body.items():
            if name == "attributes":
                continue
            spec = self.schema.field(object_name, name)
            if spec is None:
                raise invalid_field(name, object_name)
            specs.append((spec, raw))
        read_only = [spec.name for spec, _ in specs if not (spec.createable if creating else spec.updateable)]
        if read_only:
            raise bad_request(
                "INVALID_FIELD_FOR_INSERT_UPDATE", READ_ONLY_MESSAGE.format(", ".join(read_only)), read_only
            )
        values = {spec.name: input_value(spec, raw) for spec, raw in specs}
        cleared = [spec.name for spec, _ in specs if values[spec.name] is None and not spec.nillable]
        if cleared:
            raise bad_request("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(cleared)}]", cleared)
        return values

    def _derive(
        self, object_name: str, values: dict[str, Any], given: Mapping[str, Any], record: Record | None
    ) -> None:
        """Fields that follow from others: the stage's four (Probability and ForecastCategoryName
        reset when the stage changes, unless the same write sets them), expected revenue, the
        fiscal period, whether a task is closed, a contact's full name."""
        if object_name == "Task":
            values["IsClosed"] = values.get("Status") == "Completed"
            return
        if object_name == "Contact":
            values["Name"] = " ".join(part for part in (values.get("FirstName"), values["LastName"]) if part)
            return
        stage = self.state.setup.stage(values["StageName"])
        if stage is None:  # an inactive stage kept on an old record
            return
        if "StageName" in given and (record is None or record.values["StageName"] != given["StageName"]):
            if "Probability" not in given:
                values["Probability"] = Decimal(stage.probability)
            if "ForecastCategoryName" not in given:
                values["ForecastCategoryName"] = stage.forecast_category
        values["IsClosed"], values["IsWon"] = stage.closed, stage.won
        amount, probability = values.get("Amount"), values.get("Probability")
        revenue = None if amount is None or probability is None else amount * probability / 100
        values["ExpectedRevenue"] = None if revenue is None else revenue.quantize(CENTS)
        close: date = values["CloseDate"]
        values["FiscalYear"], values["FiscalQuarter"] = close.year, (close.month - 1) // 3 + 1

    def _check_record(self, object_name: str, values: Mapping[str, Any], record: Record | None) -> None:
        """References, the unique key and the validation rules, on the record as it would be."""
        for spec in self.schema.fields[object_name].values():
            target = values.get(spec.name)
            if spec.type == "reference" and target is not None and spec.name in ("OwnerId", "WhatId"):
                known = any(target in self.state.records[o] for o in spec.reference_to if o in self.state.records)
                if not known and (spec.name == "OwnerId" or str(target).startswith("006")):
                    raise bad_request("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [spec.name])
        if object_name != "Opportunity":
            return
        key = values.get(SYNC_KEY)
        if key is not None and self.state.setup.sync_key_unique:
            holders = [r for r in self.by_key(str(key)) if r is not record]
            if holders:
                message = f"duplicate value found: {SYNC_KEY} duplicates value on record with id: {holders[0].id}"
                raise bad_request("DUPLICATE_VALUE", message, [])
        for rule in self.state.setup.validation_rules:
            value = values.get(rule.field)
            if value is None if rule.minimum is None else (value is not None and value < rule.minimum):
                raise bad_request("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message, [])

    def _take_injected(self, *targets: Any) -> None:
        wanted = {str(t).lower() for t in targets if t is not None}
        for injected in self.injected:
            if injected.match.lower() in wanted:
                injected.remaining -= 1
                if injected.remaining == 0:
                    self.injected.remove(injected)
                raise injected.error

    def _history(self, record: Record, before: Mapping[str, Any] | None, user_id: str, stamp: datetime) -> None:
        if record.object_name != "Opportunity":
            return
        rows = [
            ("OpportunityFieldHistory", r)
            for r in history_rows(self.schema, self.state.setup.tracked_fields, record, before)
        ]
        stage_row = stage_history_row(record, before)
        if stage_row is not None:
            rows.append(("OpportunityHistory", stage_row | {"SystemModstamp": stamp}))
        for object_name, values in rows:
            values |= {"Id": self.state.new_id(object_name), "IsDeleted": False}
            values |= {"CreatedById": user_id, "CreatedDate": stamp}
            self.state.records[object_name][values["Id"]] = Record(object_name, values)

    def _roll_up(self, task: Record, stamp: datetime) -> None:
        """A task on an opportunity moves its SystemModstamp and, once closed, LastActivityDate;
        LastModifiedDate and LastModifiedById stay."""
        what = task.values.get("WhatId") if task.object_name == "Task" else None
        parent = self.state.records["Opportunity"].get(what) if what else None
        if parent is None or parent.deleted:
            return
        if task.values["IsClosed"]:
            done = task.values.get("ActivityDate") or stamp.date()
            last = parent.values.get("LastActivityDate")
            parent.values["LastActivityDate"] = done if last is None else max(last, done)
        self.touch(parent, stamp)
