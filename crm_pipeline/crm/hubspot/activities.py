"""Contacts and activities in HubSpot: a contact upserted by email and associated with its deal,
an activity as a note on its deal whose first line carries a reference derived from the
activity's id, so a create whose answer was lost is found again instead of made twice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from crm_pipeline.batches import chunks
from crm_pipeline.crm.adapter import activity_ref
from crm_pipeline.crm.errors import FieldMappingError
from crm_pipeline.crm.hubspot.api import MAX_BATCH, NOTE_TO_DEAL, HubSpotObject
from crm_pipeline.crm.hubspot.deal_reads import HubSpotDealReads
from crm_pipeline.crm.hubspot.mapping import epoch_ms
from crm_pipeline.crm.hubspot.setup import CONTACTS, DEALS, NOTES
from crm_pipeline.models import ActivityCreate, ContactCreate, ContactUpdate

CONTACT_PROPERTIES = {"email": "email", "phone": "phone", "title": "jobtitle", "company": "company"}


class HubSpotContactsAndActivities(HubSpotDealReads):
    """``create_contact``/``update_contact``, ``create_activity``/``find_activity``."""

    async def create_contact(self, contact: ContactCreate) -> str:
        """A contact keyed on its email when it has one (an upsert by ``email``: a resend, or a
        person HubSpot already holds, is not created twice), associated with its deal when it names
        one (contact to deal, type 4)."""
        properties = _contact_properties(contact.changes())
        if contact.email:
            answer = await self.api.batch_upsert(CONTACTS, "email", [(contact.email, properties)])
            if not answer.results:
                refusal = answer.errors[0] if answer.errors else None
                name = refusal.property_names[0] if refusal and refusal.property_names else "email"
                raise FieldMappingError(None, "email", name, contact.email, refusal.message if refusal else "no answer")
            contact_id = answer.results[0].id
        else:
            contact_id = (await self.api.create(CONTACTS, properties)).id
        if contact.opportunity_id is not None:
            deal_id = await self._deal_for_key(str(contact.opportunity_id))
            await self.api.associate(CONTACTS, contact_id, DEALS, deal_id)
        return contact_id

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        await self.api.update(CONTACTS, external_id, _contact_properties(data.changes()))

    async def create_activity(self, activity: ActivityCreate) -> str:
        """A note on the deal (associated at creation, type 214) whose body starts with a
        reference derived from the activity's id; after a lost answer the deal's notes are searched
        for it before the note is created again."""
        deal_id = await self._deal_for_key(str(activity.opportunity_id))
        ref = activity_ref(activity.id or uuid4())
        when = activity.occurred_at or datetime.now(UTC)
        header = f"{activity.kind.capitalize()}: {activity.subject} · ref {ref}"
        properties = {
            "hs_note_body": f"{header}\n{activity.body}" if activity.body else header,
            "hs_timestamp": str(epoch_ms(when)),
        }

        async def recover() -> HubSpotObject | None:
            return await self._find_note(deal_id, ref)

        note = await self.api.create(NOTES, properties, associations=[(deal_id, NOTE_TO_DEAL)], recover=recover)
        return note.id

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        if activity.id is None:
            return None
        deal_id = await self._find_deal_by_key(str(activity.opportunity_id))
        note = None if deal_id is None else await self._find_note(deal_id, activity_ref(activity.id))
        return None if note is None else note.id

    async def _find_note(self, deal_id: str, ref: str) -> HubSpotObject | None:
        note_ids = await self.api.associated_ids(DEALS, deal_id, NOTES)
        for chunk in chunks(note_ids, MAX_BATCH):
            for note in (await self.api.batch_read(NOTES, chunk, ["hs_note_body"])).results:
                if f"· ref {ref}" in (note.properties.get("hs_note_body") or "").split("\n", 1)[0]:
                    return note
        return None


def _contact_properties(changes: Mapping[str, Any]) -> dict[str, str]:
    properties = {
        CONTACT_PROPERTIES[k]: "" if v is None else str(v) for k, v in changes.items() if k in CONTACT_PROPERTIES
    }
    if "name" in changes:
        first, _, last = (changes["name"] or "").partition(" ")
        properties |= {"firstname": first, "lastname": last}
    return properties
