"""One HubSpot account (portal): typed string properties with per-value history, pipelines, records,
archive, merge, v4 associations, and search over an index that lags writes.

Every value is a string in and out. Each write appends a version ``{value, timestamp, sourceType,
sourceId, updatedByUserId}`` to the property's history, so reads with ``propertiesWithHistory``
tell a person's edit in the UI (``CRM_UI``) from the token's (``API``). Search reads the records
as they were ``search_lag_ms`` ago (rebuilt from the histories), never archived ones.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_pipeline.emulation.clock import Clock

from .errors import HubSpotError, invalid_value, no_such_property, not_found, validation

OBJECT_TYPES = {"deals": "0-3", "contacts": "0-1", "notes": "0-46"}
LAST_MODIFIED = {"deals": "hs_lastmodifieddate", "contacts": "lastmodifieddate", "notes": "hs_lastmodifieddate"}
DEFAULT_PROPERTIES = {
    "deals": ("dealname", "amount", "closedate", "pipeline", "dealstage"),
    "contacts": ("firstname", "lastname", "email"),
    "notes": ("hs_note_body", "hs_timestamp"),
}
MAX_STRING = 65_536
STATE_FORMAT = 1
"""The state file's format (``Portal.snapshot``)."""
# association type ids (HUBSPOT_DEFINED), by (from, to)
ASSOCIATION_TYPES = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
}
_NAMES = {"deals": "deal", "contacts": "contact", "notes": "note"}
API_USER = "API"
UI_USER = "CRM_UI"


@dataclass
class Property:
    name: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str = "text"
    label: str = ""
    unique: bool = False
    read_only: bool = False
    options: list[str] = field(default_factory=list)
    group: str = "dealinformation"

    def to_json(self, object_type: str) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": self.group,
            "hasUniqueValue": self.unique,
            "options": [
                {"label": o, "value": o, "displayOrder": i, "hidden": False} for i, o in enumerate(self.options)
            ],
            "modificationMetadata": {"readOnlyValue": self.read_only, "archivable": not self.read_only},
            "calculated": False,
            "externalOptions": False,
            "formField": False,
            "hidden": False,
            "description": "",
            "displayOrder": -1,
        }


def _builtin(object_type: str) -> list[Property]:
    read_only = [
        Property("hs_object_id", "number", "number", read_only=True),
        Property("createdate", "datetime", "date", read_only=True),
        Property(LAST_MODIFIED[object_type], "datetime", "date", read_only=True),
        Property("hs_merged_object_ids", "enumeration", "checkbox", read_only=True),
    ]
    writable = {
        "deals": [
            Property("dealname", "string"),
            Property("amount", "number", "number"),
            Property("closedate", "datetime", "date"),
            Property("pipeline", "enumeration", "select"),
            Property("dealstage", "enumeration", "radio"),
            Property("hubspot_owner_id", "enumeration", "select"),
            Property("description", "string", "textarea"),
        ],
        "contacts": [
            Property("firstname", "string", group="contactinformation"),
            Property("lastname", "string", group="contactinformation"),
            Property("email", "string", unique=True, group="contactinformation"),
            Property("phone", "string", "phonenumber", group="contactinformation"),
            Property("jobtitle", "string", group="contactinformation"),
            Property("company", "string", group="contactinformation"),
        ],
        "notes": [
            Property("hs_note_body", "string", "html", group="engagement"),
            Property("hs_timestamp", "datetime", "date", group="engagement"),
            Property("hubspot_owner_id", "enumeration", "select", group="engagement"),
            Property("hs_attachment_ids", "enumeration", "checkbox", group="engagement"),
        ],
    }[object_type]
    return read_only + writable


@dataclass
class Stage:
    id: str
    label: str
    probability: str
    closed: bool = False


@dataclass
class Pipeline:
    id: str
    label: str
    stages: list[Stage]

    def to_json(self, created: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "displayOrder": 0,
            "archived": False,
            "createdAt": created,
            "updatedAt": created,
            "stages": [
                {
                    "id": stage.id,
                    "label": stage.label,
                    "displayOrder": order,
                    "archived": False,
                    "createdAt": created,
                    "updatedAt": created,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    "metadata": {"probability": stage.probability, "isClosed": str(stage.closed).lower()},
                }
                for order, stage in enumerate(self.stages)
            ],
        }


DEFAULT_PIPELINE = Pipeline(
    "default",
    "Sales Pipeline",
    [
        Stage("appointmentscheduled", "Appointment Scheduled", "0.2"),
        Stage("qualifiedtobuy", "Qualified To Buy", "0.4"),
        Stage("presentationscheduled", "Presentation Scheduled", "0.6"),
        Stage("decisionmakerboughtin", "Decision Maker Bought-In", "0.8"),
        Stage("contractsent", "Contract Sent", "0.9"),
        Stage("closedwon", "Closed Won", "1.0", closed=True),
        Stage("closedlost", "Closed Lost", "0.0", closed=True),
    ],
)


@dataclass(frozen=True)
class Version:
    value: str
    timestamp_ms: int
    source_type: str
    source_id: str
    user_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": self.value,
            "timestamp": iso(self.timestamp_ms),
            "sourceType": self.source_type,
            "sourceId": self.source_id,
        }
        if self.user_id is not None:
            entry["updatedByUserId"] = self.user_id
        return entry


@dataclass
class Record:
    id: str
    object_type: str
    created_ms: int
    history: dict[str, list[Version]] = field(default_factory=dict)  # newest first
    archived_ms: int | None = None
    merged_ids: list[str] = field(default_factory=list)

    @property
    def updated_ms(self) -> int:
        return max((versions[0].timestamp_ms for versions in self.history.values()), default=self.created_ms)

    def values(self, as_of_ms: int | None = None) -> dict[str, str]:
        """Each property's value (``""`` cleared values left out), as of a moment if given."""
        values = {}
        for name, versions in self.history.items():
            current = next((v for v in versions if as_of_ms is None or v.timestamp_ms <= as_of_ms), None)
            if current is not None and current.value != "":
                values[name] = current.value
        return values


@dataclass(frozen=True)
class Source:
    """Who writes: the app's token (``API``) or a person in the HubSpot UI (``CRM_UI``)."""

    source_type: str
    source_id: str
    user_id: int | None = None


APP = Source(API_USER, "sandbox-private-app")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Portal:
    def __init__(self, clock: Clock, first_id: int = 1001) -> None:
        self.clock = clock
        self._first_id = first_id
        self.preserve_merged_ids = False  # HubSpot's "Primary ID Preservation" beta
        self.search_lag_ms = 0
        self.search_result_cap = 10_000
        self.clear()

    def clear(self) -> None:
        self.properties = {t: {p.name: p for p in _builtin(t)} for t in OBJECT_TYPES}
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
            if raw in (name, type_id, _NAMES[name]):
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
        record_id = self._unique.get((object_type, name, _folded(name, value)))
        return self.records[object_type].get(record_id) if record_id is not None else None

    def _index(self, record: Record, values: Mapping[str, str]) -> None:
        """Point the unique-value index at ``record`` for these values (old ones dropped)."""
        known = self.properties[record.object_type]
        for name, value in values.items():
            if name in known and known[name].unique:
                old = record.values().get(name)
                if old is not None:
                    self._unique.pop((record.object_type, name, _folded(name, old)), None)
                if value:
                    self._unique[(record.object_type, name, _folded(name, value))] = record.id

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
            values[name] = "" if value == "" else _normal(prop, value, existing)
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
                        f"A {_NAMES[object_type]} with {name}={value} already exists. Existing ID: {holder.id}",
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


_OPEN_ENUMERATIONS = frozenset({"dealstage", "pipeline", "hubspot_owner_id", "hs_attachment_ids"})
"""Enumerations whose values are other objects' ids (pipelines and stages are checked apart)."""


def _folded(name: str, value: str) -> str:
    return value.lower() if name == "email" else value


def _normal(prop: Property, value: str, existing: str) -> str:
    """The stored form of a non-empty value, or a 400 naming the property."""
    name = prop.name
    if prop.type == "number":
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise invalid_value(name, value, "not a number") from None
        if not number.is_finite():
            raise invalid_value(name, value, "not a finite number")
        return value
    if prop.type == "bool":
        if value.lower() not in ("true", "false"):
            raise invalid_value(name, value, "a bool is 'true' or 'false'")
        return value.lower()
    if prop.type == "datetime":
        return iso(epoch_ms(name, value))
    if prop.type == "date":
        ms = epoch_ms(name, value)
        if ms % 86_400_000:
            raise invalid_value(name, value, "a date is midnight UTC")
        return datetime.fromtimestamp(ms / 1000, tz=UTC).date().isoformat()
    if prop.type == "enumeration" and name not in _OPEN_ENUMERATIONS:
        parts = [p for p in value.split(";") if p]
        if value.startswith(";"):  # a leading ';' appends to the values held
            parts = [p for p in existing.split(";") if p] + parts
        unknown = [p for p in parts if p not in prop.options]
        if unknown:
            raise invalid_value(name, value, f"{unknown[0]!r} is not one of the allowed options")
        return ";".join(dict.fromkeys(parts))
    return value


def epoch_ms(name: str, value: str) -> int:
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise invalid_value(name, value, "epoch milliseconds or ISO 8601 expected") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def records_json(
    records: Iterable[Record],
    portal: Portal,
    properties: list[str],
    with_history: list[str],
    as_of_ms: int | None = None,
) -> list[dict[str, Any]]:
    return [record_json(r, portal, properties, with_history, as_of_ms) for r in records]


def record_json(
    record: Record, portal: Portal, properties: list[str], with_history: list[str], as_of_ms: int | None = None
) -> dict[str, Any]:
    """SimplePublicObject: the asked properties (default ones when none), ``hs_object_id`` and the
    modification dates always; absent values left out."""
    values = record.values(as_of_ms)
    wanted = list(properties or DEFAULT_PROPERTIES[record.object_type])
    wanted += ["hs_object_id", "createdate", LAST_MODIFIED[record.object_type]]
    body: dict[str, Any] = {
        "id": record.id,
        "properties": {name: values.get(name) for name in dict.fromkeys(wanted)},
        "createdAt": iso(record.created_ms),
        "updatedAt": values[LAST_MODIFIED[record.object_type]],
        "archived": record.archived_ms is not None,
    }
    if record.archived_ms is not None:
        body["archivedAt"] = iso(record.archived_ms)
    if with_history:
        body["propertiesWithHistory"] = {
            name: [v.to_json() for v in record.history.get(name, [])] for name in with_history
        }
    return body
