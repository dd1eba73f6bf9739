"""Contacts and activities in Notion: contacts as pages of their own data source, an activity as
one paragraph on its deal's page carrying a reference derived from its id, so an append whose
answer was lost is found again instead of landing twice. Apart from the deals' reads and
writes (adapter.py) because they share nothing with them but the page store."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

from crm_pipeline.crm.adapter import activity_ref
from crm_pipeline.crm.notion.codecs import to_notion_properties
from crm_pipeline.crm.notion.page_store import NotionPageStore
from crm_pipeline.crm.notion.properties import NotionProperty
from crm_pipeline.models import ActivityCreate, ContactCreate, ContactUpdate

_ACTIVITY_TEXT = NotionProperty("Activity", "rich_text")


class NotionContactsAndActivities(NotionPageStore):
    """``create_contact``/``update_contact``, ``create_activity``/``find_activity``."""

    async def create_contact(self, contact: ContactCreate) -> str:
        return await self._create_record(await self._contact_source(), contact)

    async def update_contact(self, external_id: str, data: ContactUpdate) -> None:
        await self._update_record(await self._contact_source(), external_id, data.changes())

    async def create_activity(self, activity: ActivityCreate) -> str:
        """Append the activity as one paragraph to its deal's page; returns the block id.

        The deal page is found by sync key (cached). The paragraph's first line ends with a short
        reference derived from ``activity.id`` (``· ref 1a2b3c4d5e6f``; an id is generated for the
        call when missing). After an uncertain failure the page's blocks are searched for that
        reference before appending again, so an activity lands once, and a distinct activity with
        the same text is never taken for it.
        """
        deals = await self._deals()
        page_id = await self._page_for_key(deals, str(activity.opportunity_id))
        ref = activity_ref(activity.id or uuid4())
        paragraph = {
            "object": "block",
            "type": "paragraph",
            "paragraph": {"rich_text": _activity_rich_text(activity, ref)},
        }
        return await self.api.append_block_children(
            page_id, [paragraph], recover=lambda: self._find_paragraph(page_id, ref)
        )

    async def find_activity(self, activity: ActivityCreate) -> str | None:
        """The paragraph an earlier ``create_activity`` of this activity appended, if any."""
        if activity.id is None:
            return None
        page_id = await self._find_page_by_key(await self._deals(), str(activity.opportunity_id))
        return None if page_id is None else await self._find_paragraph(page_id, activity_ref(activity.id))

    async def _find_paragraph(self, page_id: str, ref: str) -> str | None:
        """The id of the page's paragraph carrying this activity reference, if an earlier append
        landed. The reference is read from the whole text (all rich-text items)."""
        cursor: str | None = None
        while True:
            response = await self.api.list_block_children(page_id, cursor)
            for block in response["results"]:
                paragraph = block.get("paragraph") or {}
                text = "".join(item.get("plain_text", "") for item in paragraph.get("rich_text", []))
                if ref in _refs_in(text):
                    return block["id"]
            cursor = response.get("next_cursor")
            if not response.get("has_more") or cursor is None:
                return None


_REF_MARK = " · ref "
_REF_AT_LINE_END = re.compile(re.escape(_REF_MARK) + r"([0-9a-f]{12})$", re.MULTILINE)


def _refs_in(text: str) -> set[str]:
    """The activity references ending a line of ``text``.

    Every line is read, not only the first, so a subject spanning lines cannot hide the header's
    reference; a reference is a hash of a fresh id, so no other activity carries it by chance.
    """
    return set(_REF_AT_LINE_END.findall(text))


def _activity_rich_text(activity: ActivityCreate, ref: str) -> list[dict[str, Any]]:
    """The paragraph text, split into rich-text items of at most 2,000 characters by the mapping layer.

    The header line is ``Kind: subject (when) · ref <ref>``; the body, if any, follows on the next
    lines.
    """
    when = f" ({activity.occurred_at:%Y-%m-%d %H:%M %Z})".replace(" )", ")") if activity.occurred_at else ""
    text = f"{activity.kind.capitalize()}: {activity.subject}{when}{_REF_MARK}{ref}"
    if activity.body:
        text += f"\n{activity.body}"
    record_id = str(activity.id) if activity.id else None
    encoded = to_notion_properties({"text": text}, {"text": _ACTIVITY_TEXT}, record_id=record_id)
    rich_text: list[dict[str, Any]] = encoded[_ACTIVITY_TEXT.name]["rich_text"]
    return rich_text
