"""One HubSpot account (portal): typed string properties with per-value history, pipelines, records,
archive, merge, v4 associations, and search over an index that lags writes. What these are made
of is in ``model``, how values are checked and stored in ``values``, their JSON in ``render``.

Every value is a string in and out. Each write appends a version ``{value, timestamp, sourceType,
sourceId, updatedByUserId}`` to the property's history, so reads with ``propertiesWithHistory``
tell a person's edit in the UI (``CRM_UI``) from the token's (``API``). Search reads the records
as they were ``search_lag_ms`` ago (rebuilt from the histories), never archived ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from crm_pipeline.emulation.clock import Clock

from .errors import HubSpotError, invalid_value, no_such_property, not_found, validation
from .model import (
    APP,
    ASSOCIATION_TYPES,
    DEFAULT_PIPELINE,
    LAST_MODIFIED,
    OBJECT_TYPES,
    SINGULAR_NAMES,
    Property,
    Record,
    Source,
    Stage,
    Version,
    builtin_properties,
    iso,
)
from .values import folded, normal_value

MAX_STRING = 65_536
STATE_FORMAT = 1
"""The state file's format (``Portal.snapshot``)."""


class Portal:
    def __init__(self, clock: Clock, first_id: int = 1001) -> None:
        self.clock = clock
        self._first_id = first_id
        self.preserve_merged_ids = False  # HubSpot's "Primary ID Preservation" beta
        self.search_lag_ms = 0
        self.search_result_cap = 10_000
        self.clear()

    def clear(self) -> None:
        self.properties = {t: {p.name: p for p in builtin_properties(t)} for t in OBJECT_TYPES}
        self.pipelines = {DEFAULT_PIPELINE.id: DEFAULT_PIPELINE}
        self.records: dict[str, dict[str, Record]] = {t: {} for t in OBJECT_TYPES}
        self.aliases: dict[str, dict[str, str]] = {t: {} for t in OBJECT_TYPES}  # merged id -> survivor
        self.associations: set[tuple[str, str, str, str]] = set()  # (from type, from id, to type, to id)
        self._ids = itertools.count(self._first_id)
        self._unique: dict[tuple[str, str, str], str] = {}  # (type, property, value) -> record id
        self.revision = 0

    # --- state file ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a restart must keep, as JSON: properties, records with their history,
        merges and associations (the pipeline is built in; the clock and settings are not state)."""
        return {
            "format": STATE_FORMAT,
            "properties": {t: [asdict(p) for p in props.values()] for t, props in self.properties.items()},
            "records": [
                {**asdict(record), "history": {n: [asdict(v) for v in vs] for n, vs in record.history.items()}}
                for records in self.records.values()
                for record in records.values()
            ],
            "aliases": self.aliases,
            "associations": sorted(self.associations),
        }

    def load(self, document: Mapping[str, Any]) -> None:
        """Replace the portal's state with a ``snapshot``. Ids go on after the highest one issued:
        every id is a record's or, once merged away, an alias's."""
        if document.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported local HubSpot state format {document.get('format')!r}")
        self.clear()
        for object_type, props in document["properties"].items():
            self.properties[object_type] = {raw["name"]: Property(**raw) for raw in props}
        for raw in document["records"]:
            history = {name: [Version(**v) for v in versions] for name, versions in raw["history"].items()}
            record = Record(**{**raw, "history": history})
            self.records[record.object_type][record.id] = record
            self._index(record, record.values())
        self.aliases = {t: dict(document["aliases"].get(t, {})) for t in OBJECT_TYPES}
        self.associations = {(ft, fi, tt, ti) for ft, fi, tt, ti in document["associations"]}
        issued = [int(i) for records in self.records.values() for i in records]
        issued += [int(i) for aliases in self.aliases.values() for i in aliases]
        self._ids = itertools.count(max(issued, default=self._first_id - 1) + 1)
        self.revision += 1  # not the empty portal's revision: a reset after a load is a change

    # --- schema -------------------------------------------------------------------------------------

    def object_type(self, raw: str) -> str:
        for name, type_id in OBJECT_TYPES.items():
            if raw in (name, type_id, SINGULAR_NAMES[name]):
                return name
        raise HubSpotError(400, "VALIDATION_ERROR", f"Unable to infer object type from: {raw}")

    def create_property(self, object_type: str, body: Mapping[str, Any]) -> Property:
        name = str(body.get("name", ""))
        if not name or not name.replace("_", "").isalnum() or name != name.lower():
            raise validation(f"Property name {name!r} must be lower case letters, digits and underscores.")
        if name in self.properties[object_type]:
            raise HubSpotError(409, "OBJECT_ALREADY_EXISTS", f"A property named '{name}' already exists.")
        kind = str(body.get("type", ""))
        if kind not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise validation(f"Unknown property type {kind!r}.")
        unique = bool(body.get("hasUniqueValue", False))
        if unique and sum(p.unique for p in self.properties[object_type].values()) >= 10:
            raise validation("An object can have at most ten unique value properties.")
        options = [str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict)]
        prop = Property(
            name,
            kind,
            str(body.get("fieldType", "text")),
            str(body.get("label", name)),
            unique,
            options=options,
            group=str(body.get("groupName", "dealinformation")),
        )
        self.properties[object_type][name] = prop
        self.revision += 1
        return prop

    def update_property(self, object_type: str, name: str, body: Mapping[str, Any]) -> Property:
        """Change a property's label or options (its type and uniqueness stay)."""
        prop = self.properties[object_type].get(name)
        if prop is None or prop.read_only:
            raise HubSpotError(404, "OBJECT_NOT_FOUND", f"Unable to find property {name}")
        if "options" in body:
            options = [str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict)]
            if len(set(options)) != len(options) or not all(options):
                raise validation("Option values must be unique and non-empty.")
            prop.options = options
        prop.label = str(body.get("label", prop.label))
        self.revision += 1
        return prop

    def stage(self, pipeline_id: str, stage_id: str) -> Stage | None:
        pipeline = self.pipelines.get(pipeline_id)
        return next((s for s in pipeline.stages if s.id == stage_id), None) if pipeline else None

    # --- records ------------------------------------------------------------------------------------

    def get(self, object_type: str, object_id: str, *, id_property: str | None = None) -> Record:
        """The record by id (an absorbed id answers as its survivor) or by a unique property."""
        if id_property and id_property != "hs_object_id":
            self.unique_property(object_type, id_property)
            found = self.find_unique(object_type, id_property, object_id)
            if found is None:
                raise not_found(object_type, object_id)
            return found
        records = self.records[object_type]
        object_id = self.aliases[object_type].get(object_id, object_id)
        if object_id not in records:
            raise not_found(object_type, object_id)
        return records[object_id]

    def find_unique(self, object_type: str, name: str, value: str) -> Record | None:
        """The record holding a unique property's value (emails compared case-blind)."""
        record_id = self._unique.get((object_type, name, folded(name, value)))
        return self.records[object_type].get(record_id) if record_id is not None else None

    def _index(self, record: Record, values: Mapping[str, str]) -> None:
        """Point the unique-value index at ``record`` for these values (old ones dropped)."""
        known = self.properties[record.object_type]
        for name, value in values.items():
            if name in known and known[name].unique:
                old = record.values().get(name)
                if old is not None:
                    self._unique.pop((record.object_type, name, folded(name, old)), None)
                if value:
                    self._unique[(record.object_type, name, folded(name, value))] = record.id

    def unique_property(self, object_type: str, name: str) -> Property:
        prop = self.properties[object_type].get(name)
        if prop is None or not prop.unique:
            raise validation(f"{name} is not a unique identifier property for {object_type}.")
        return prop

    def create(self, object_type: str, properties: Mapping[str, Any], source: Source = APP) -> Record:
        values = self._checked(object_type, properties, None)
        if object_type == "deals":
            values.setdefault("pipeline", DEFAULT_PIPELINE.id)
            if "dealname" not in values or "dealstage" not in values:
                raise validation("Deals need dealname and dealstage (and a pipeline, default 'default').")
            self._check_stage(values["pipeline"], values["dealstage"])
        if object_type == "notes" and "hs_timestamp" not in values:
            raise validation("Notes need hs_timestamp.")
        now = self.clock.now_ms()
        record = Record(str(next(self._ids)), object_type, now)
        self._unique_clash(object_type, values, None)
        self.records[object_type][record.id] = record
        self._write(record, {**values, "hs_object_id": record.id, "createdate": iso(now)}, source, now)
        return record

    def update(self, record: Record, properties: Mapping[str, Any], source: Source = APP) -> Record:
        if record.archived_ms is not None:
            raise not_found(record.object_type, record.id)
        values = self._checked(record.object_type, properties, record)
        if record.object_type == "deals" and ("dealstage" in values or "pipeline" in values):
            current = record.values()
            self._check_stage(
                values.get("pipeline", current.get("pipeline", "")), values.get("dealstage", current["dealstage"])
            )
        self._unique_clash(record.object_type, values, record)
        self._write(record, values, source, self.clock.now_ms())
        return record

    def _write(self, record: Record, values: Mapping[str, str], source: Source, now: int) -> None:
        current = record.values()
        changed = {name: value for name, value in values.items() if current.get(name, "") != value}
        self._index(record, changed)
        changed[LAST_MODIFIED[record.object_type]] = iso(now)
        for name, value in changed.items():
            record.history.setdefault(name, []).insert(
                0, Version(value, now, source.source_type, source.source_id, source.user_id)
            )
        self.revision += 1

    def _checked(self, object_type: str, properties: Mapping[str, Any], record: Record | None) -> dict[str, str]:
        """Values as HubSpot stores them; unknown or read-only properties and bad values refused."""
        if not isinstance(properties, Mapping):
            raise validation("properties must be an object of strings.")
        known = self.properties[object_type]
        values = {}
        for name, raw in properties.items():
            prop = known.get(name)
            if prop is None or prop.read_only:
                raise no_such_property(name, object_type)
            if raw is None:
                raw = ""
            if not isinstance(raw, str | int | float) or isinstance(raw, bool):
                raise invalid_value(name, str(raw), "values are strings")
            value = str(raw)
            if len(value) > MAX_STRING:
                raise invalid_value(name, value[:20], f"at most {MAX_STRING} characters")
            existing = record.values().get(name, "") if record else ""
            values[name] = "" if value == "" else normal_value(prop, value, existing)
        return values

    def _check_stage(self, pipeline_id: str, stage_id: str) -> None:
        if pipeline_id not in self.pipelines:
            raise invalid_value("pipeline", pipeline_id, "no pipeline has this id")
        if self.stage(pipeline_id, stage_id) is None:
            raise invalid_value("dealstage", stage_id, f"not a stage id of pipeline {pipeline_id}")

    def _unique_clash(self, object_type: str, values: Mapping[str, str], record: Record | None) -> None:
        for name, value in values.items():
            if value and self.properties[object_type][name].unique:
                holder = self.find_unique(object_type, name, value)
                if holder is not None and holder is not record:
                    raise HubSpotError(
                        409,
                        "CONFLICT",
                        f"A {SINGULAR_NAMES[object_type]} with {name}={value} already exists. Existing ID: {holder.id}",
                        [{"message": "Unique value conflict", "code": "CONFLICT", "context": {"propertyName": [name]}}],
                    )

    def archive(self, record: Record) -> None:
        if record.archived_ms is None:
            record.archived_ms = self.clock.now_ms()
            self.revision += 1

    def restore(self, record: Record, source: Source) -> Record:
        """What restoring from the recycle bin in the UI does: the record is back, its modification
        date bumped; no restore endpoint exists in the API."""
        if record.archived_ms is None:
            raise validation(f"{record.id} is not in the recycling bin.")
        record.archived_ms = None
        self._write(record, {}, source, self.clock.now_ms())
        return record

    def merge(self, object_type: str, primary_id: str, absorbed_id: str) -> Record:
        """Merge ``absorbed_id`` into ``primary_id``: the survivor keeps the primary's values and
        fills its gaps from the other; unless ids are preserved, it gets a new id, and both old ids
        answer as it from then on."""
        if object_type == "notes":
            raise HubSpotError(404, "NOT_FOUND", "Notes cannot be merged.")
        primary, absorbed = self.get(object_type, primary_id), self.get(object_type, absorbed_id)
        if primary is absorbed or primary.archived_ms is not None or absorbed.archived_ms is not None:
            raise validation("Merge needs two different live records.")
        now = self.clock.now_ms()
        records, known = self.records[object_type], self.properties[object_type]
        survivor = primary
        if not self.preserve_merged_ids:
            survivor = Record(str(next(self._ids)), object_type, primary.created_ms, dict(primary.history))
            del records[primary.id]
            records[survivor.id] = survivor
            self._index(survivor, survivor.values())
            survivor.merged_ids.append(primary.id)
        del records[absorbed.id]
        self._index(absorbed, dict.fromkeys(absorbed.values(), ""))  # its unique values are free again
        survivor.merged_ids.append(absorbed.id)
        for old in (primary.id, absorbed.id):
            if old != survivor.id:
                self.aliases[object_type][old] = survivor.id
        for alias, target in list(self.aliases[object_type].items()):
            if target in (primary.id, absorbed.id):
                self.aliases[object_type][alias] = survivor.id
        kept = survivor.values()
        fill = {k: v for k, v in absorbed.values().items() if k not in kept and not known[k].read_only}
        fill.update({"hs_object_id": survivor.id, "hs_merged_object_ids": ";".join(survivor.merged_ids)})
        self._write(survivor, fill, APP, now)
        self.associations = {(ft, self._alias(ft, fi), tt, self._alias(tt, ti)) for ft, fi, tt, ti in self.associations}
        return survivor

    def _alias(self, object_type: str, object_id: str) -> str:
        return self.aliases[object_type].get(object_id, object_id)

    def live(self, object_type: str, archived: bool = False) -> list[Record]:
        """Live records (or only archived ones), in creation (id) order."""
        return sorted(
            (r for r in self.records[object_type].values() if (r.archived_ms is not None) == archived),
            key=lambda r: int(r.id),
        )

    # --- associations ------------------------------------------------------------------------------

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str, type_id: int | None = None) -> None:
        expected = ASSOCIATION_TYPES.get((from_type, to_type))
        if expected is None or type_id not in (None, expected):
            raise validation(f"Association type {type_id} does not link {from_type} to {to_type}.")
        source, target = self.get(from_type, from_id), self.get(to_type, to_id)
        self.associations.add((from_type, source.id, to_type, target.id))
        self.associations.add((to_type, target.id, from_type, source.id))
        self.revision += 1

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        source = self.get(from_type, from_id)
        return sorted(
            (ti for ft, fi, tt, ti in self.associations if (ft, fi, tt) == (from_type, source.id, to_type)), key=int
        )
