"""What an org holds, as plain data a transaction can copy and roll back: its setup, records by
object and id (values keyed by canonical field name, as SOQL reads them), the id serials, the
external-id index over live records, the delete log, and the built-in users. Its JSON form is the
state file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .ids import make_id
from .schema import PREFIXES
from .setup import SYNC_KEY, Setup
from .values import from_state, state_value

STATE_FORMAT = 1
INTEGRATION_USER = make_id(PREFIXES["User"], 1)
"""The user behind the default token: the sync's dedicated integration user."""
HUMAN_USER = make_id(PREFIXES["User"], 2)
"""A person who edits opportunities in Salesforce's UI."""
AUTOMATED_PROCESS = make_id(PREFIXES["User"], 3)
"""Whom scheduled flows run as."""
INTEGRATION_USERNAME = "integration@sandbox.example"
"""The integration user's username (``integration_username`` finds the user by it; without one, a
connection takes the token's user from OAuth user info)."""
_USERS = (
    (INTEGRATION_USER, INTEGRATION_USERNAME, "Integration User"),
    (HUMAN_USER, "pat.person@sandbox.example", "Pat Person"),
    (AUTOMATED_PROCESS, "autoproc@sandbox.example", "Automated Process"),
)
SETUP_MOMENT = datetime(2020, 1, 1, tzinfo=UTC)
"""When the org was set up: the users' and stages' audit dates."""


@dataclass
class Record:
    object_name: str
    values: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.values["Id"])

    @property
    def deleted(self) -> bool:
        return bool(self.values["IsDeleted"])


@dataclass
class Deletion:
    object_name: str
    record_id: str
    at: datetime


@dataclass
class OrgState:
    setup: Setup = field(default_factory=Setup)
    records: dict[str, dict[str, Record]] = field(default_factory=lambda: {name: {} for name in PREFIXES})
    serials: dict[str, int] = field(default_factory=dict)
    keys: dict[str, set[str]] = field(default_factory=dict)
    """Live opportunities by their Sync_Key__c, compared case-blind."""
    deletions: list[Deletion] = field(default_factory=list)
    purged_until: datetime | None = None
    """The delete log holds nothing older (``earliestDateAvailable``)."""

    def __post_init__(self) -> None:
        if not self.records["User"]:
            for user_id, username, name in _USERS:
                values = {"Id": user_id, "IsDeleted": False, "Username": username, "Name": name}
                values |= {"Email": username, "IsActive": True, "CreatedDate": SETUP_MOMENT}
                values |= {"CreatedById": INTEGRATION_USER, "LastModifiedDate": SETUP_MOMENT}
                values |= {"LastModifiedById": INTEGRATION_USER, "SystemModstamp": SETUP_MOMENT}
                self.records["User"][user_id] = Record("User", values)
            self.serials[PREFIXES["User"]] = len(_USERS)

    def new_id(self, object_name: str) -> str:
        prefix = PREFIXES[object_name]
        self.serials[prefix] = self.serials.get(prefix, 0) + 1
        return make_id(prefix, self.serials[prefix])

    def index_key(self, record: Record, holds: bool) -> None:
        """Enter (or drop) the opportunity's key in the external-id index."""
        key = record.values.get(SYNC_KEY)
        if record.object_name != "Opportunity" or key is None:
            return
        ids = self.keys.setdefault(str(key).lower(), set())
        if holds:
            ids.add(record.id)
        else:
            ids.discard(record.id)
            if not ids:
                del self.keys[str(key).lower()]

    def copy(self) -> OrgState:
        """A copy no write to this state reaches (values are immutable; their dicts are copied)."""
        return OrgState(
            self.setup,
            {
                name: {i: Record(r.object_name, dict(r.values)) for i, r in rs.items()}
                for name, rs in self.records.items()
            },
            dict(self.serials),
            {key: set(ids) for key, ids in self.keys.items()},
            list(self.deletions),
            self.purged_until,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "setup": self.setup.to_json(),
            "records": [
                {"object": r.object_name, "values": {k: state_value(v) for k, v in r.values.items()}}
                for records in self.records.values()
                for r in records.values()
            ],
            "serials": self.serials,
            "deletions": [[d.object_name, d.record_id, d.at.isoformat()] for d in self.deletions],
            "purged_until": None if self.purged_until is None else self.purged_until.isoformat(),
        }

    @staticmethod
    def load(document: dict[str, Any]) -> OrgState:
        if document.get("format") != STATE_FORMAT:
            raise ValueError(f"unsupported local Salesforce state format {document.get('format')!r}")
        state = OrgState(Setup.from_json(document["setup"]), serials=dict(document["serials"]))
        for raw in document["records"]:
            record = Record(raw["object"], {k: from_state(v) for k, v in raw["values"].items()})
            state.records[record.object_name][record.id] = record
            if not record.deleted:
                state.index_key(record, True)
        state.deletions = [Deletion(o, i, datetime.fromisoformat(at)) for o, i, at in document["deletions"]]
        purged = document["purged_until"]
        state.purged_until = None if purged is None else datetime.fromisoformat(purged)
        return state
