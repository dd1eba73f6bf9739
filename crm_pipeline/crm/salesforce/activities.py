"""Contacts and activities in Salesforce: a contact as a Contact, an activity as a completed Task
on its opportunity (``WhatId``) whose Subject ends with a reference derived from the activity's id
(`` · ref 1a2b3c4d5e6f``, as on Notion and HubSpot). Subject is filterable in SOQL (a Task's
Description, a long text, is not), so after a lost answer the opportunity's Tasks are searched for
the reference before the Task is created again: the activity lands once, and another activity with
the same text (another id, another reference) is never taken for it. No custom activity field is
needed in the org."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from crm_pipeline.crm.adapter import activity_ref
from crm_pipeline.crm.errors import RecordGoneError
from crm_pipeline.crm.salesforce.deal_reads import SalesforceDealReads
from crm_pipeline.crm.salesforce.mapping import soql_text
from crm_pipeline.models import ActivityCreate, ContactCreate, ContactUpdate

TASK, CONTACT = "Task", "Contact"
SUBJECT_CHARS = 255
_REF = " · ref "


class SalesforceContactsAndActivities(SalesforceDealReads):
    """Contacts, and activities as Tasks on their opportunity."""

    async def create_contact(self, contact: ContactCreate) -> str:
        return await self.api.create(CONTACT, _contact_fields(contact.model_dump(exclude={"id"})))

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        fields = _contact_fields(data.changes())
        if fields:
            await self.api.patch(CONTACT, external_id, fields)

    async def create_activity(self, activity: ActivityCreate) -> str:
        """A completed Task on the opportunity holding ``activity.opportunity_id`` as its sync key."""
        activity_id = activity.id or uuid4()
        what_id = await self._opportunity_for(str(activity.opportunity_id))
        ref = activity_ref(activity_id)
        when = activity.occurred_at or datetime.now(UTC)
        task = {
            "WhatId": what_id,
            "Subject": f"{activity.subject[: SUBJECT_CHARS - len(_REF) - len(ref)]}{_REF}{ref}",
            "Status": "Completed",
            "Priority": "Normal",
            "ActivityDate": when.astimezone(UTC).date().isoformat(),
            "Description": f"{activity.kind}: {activity.body}" if activity.body else activity.kind,
        }

        async def recover() -> str | None:
            return await self._find_task(what_id, ref)

        return await self.api.create(TASK, task, recover=recover)

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        if activity.id is None:
            return None
        what_id = await self._find_by_key(str(activity.opportunity_id))
        return None if what_id is None else await self._find_task(what_id, activity_ref(activity.id))

    async def _opportunity_for(self, key: str) -> str:
        found = await self._find_by_key(key)
        if found is None:
            raise RecordGoneError(key, "no live Salesforce opportunity holds this sync key")
        return found

    async def _find_task(self, what_id: str, ref: str) -> str | None:
        rows = await self.api.query(
            f"SELECT Id, Subject FROM {TASK} WHERE WhatId = {soql_text(what_id)} "
            f"AND Subject LIKE {soql_text('%' + _REF.strip() + ' ' + ref)}"
        )
        found = [row for row in rows if str(row.get("Subject", "")).endswith(f"{_REF}{ref}")]
        return str(found[0]["Id"]) if found else None


def _contact_fields(values: dict[str, object]) -> dict[str, object]:
    """Contact fields of contact values: the name split at its first space (LastName is required)."""
    fields: dict[str, object] = {
        theirs: values[ours]
        for ours, theirs in (("email", "Email"), ("phone", "Phone"), ("title", "Title"))
        if ours in values
    }
    if "name" in values:
        first, _, last = str(values["name"] or "").partition(" ")
        fields |= {"FirstName": first, "LastName": last} if last else {"LastName": first}
    return fields
