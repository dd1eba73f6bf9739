"""The Salesforce REST calls the adapter makes, each one request through the caller.

Only ``Salesforce``-level calls are used (``query``, ``query_more``, ``restful``): they parse
numbers with ``parse_float=Decimal`` (``sf.Opportunity`` calls would return floats), and request
bodies are written by ``json_text`` so decimals go out exactly. sObject Collections carry every
write of opportunities, 200 records a request, with one result per record.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simple_salesforce.api import Salesforce

from crm_pipeline.crm.salesforce.client import SalesforceCaller
from crm_pipeline.crm.salesforce.mapping import json_text

MAX_COLLECTION = 200
"""Records per sObject Collections request."""
Record = dict[str, Any]


@dataclass(frozen=True)
class SaveResult:
    """One record's result in a collections answer: its id, or why it was refused."""

    id: str | None
    success: bool
    created: bool
    status_code: str | None = None
    message: str | None = None
    fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> SaveResult:
        errors = raw.get("errors") or []
        first: Mapping[str, Any] = errors[0] if errors else {}
        return cls(
            id=raw.get("id"),
            success=bool(raw.get("success")),
            created=bool(raw.get("created")),
            status_code=first.get("statusCode"),
            message=first.get("message"),
            fields=tuple(first.get("fields") or ()),
        )


def _more(url: str, sf: Salesforce) -> Any:
    return sf.query_more(url, identifier_is_url=True)


class SalesforceAPI:
    """Typed endpoints over one ``Salesforce`` client and its caller."""

    def __init__(self, caller: SalesforceCaller) -> None:
        self.caller = caller

    def close(self) -> None:
        self.caller.close()

    async def query(self, soql: str, *, include_deleted: bool = False) -> list[Record]:
        """Every row of a SOQL query, page by page (each page one request, retried alone)."""
        return (await self.query_at(soql, include_deleted=include_deleted))[0]

    async def query_at(self, soql: str, *, include_deleted: bool = False) -> tuple[list[Record], datetime | None]:
        """``query``, and Salesforce's time when the query ran, at the earliest (None: no answer
        said the time). It is taken in the worker thread right after the first page's answer, so
        no other request of the adapter can come between."""

        def first(sf: Salesforce) -> tuple[Any, datetime | None]:
            return sf.query(soql, include_deleted=include_deleted), self.caller.sent_at

        page, ran_at = await self.caller.call(first)
        rows: list[Record] = list(page["records"])
        while not page["done"]:
            page = await self.caller.call(functools.partial(_more, page["nextRecordsUrl"]))
            rows += page["records"]
        return rows, ran_at

    async def describe(self, sobject: str) -> Record:
        described: Record = dict(await self._rest(f"sobjects/{sobject}/describe"))
        return described

    async def upsert(self, sobject: str, key_field: str, records: Sequence[Record]) -> list[SaveResult]:
        """Collections upsert by an external id (at most 200 records): resending writes the same
        records again and creates none twice, so a lost answer is simply resent."""
        body = {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in records]}
        answer = await self._rest(f"composite/sobjects/{sobject}/{key_field}", "PATCH", body)
        return [SaveResult.of(r) for r in answer]

    async def update(self, sobject: str, records: Sequence[Record]) -> list[SaveResult]:
        """Collections update by id (at most 200 records). Never resent after a lost answer: a
        person may have edited the record meanwhile, so the caller reads it back instead."""
        body = {"allOrNone": False, "records": [{"attributes": {"type": sobject}, **r} for r in records]}
        answer = await self._rest("composite/sobjects", "PATCH", body, idempotent=False)
        return [SaveResult.of(r) for r in answer]

    async def delete(self, ids: Sequence[str]) -> list[SaveResult]:
        answer = await self.caller.call(
            lambda sf: sf.restful("composite/sobjects", {"ids": ",".join(ids), "allOrNone": "false"}, "DELETE")
        )
        return [SaveResult.of(r) for r in answer or []]

    async def create(
        self, sobject: str, record: Record, recover: Callable[[], Awaitable[str | None]] | None = None
    ) -> str:
        """Create one record; after an uncertain failure ``recover`` looks for its id before resending."""

        async def landed() -> Record | None:
            found = None if recover is None else await recover()
            return None if found is None else {"id": found}

        answer = await self._rest(f"sobjects/{sobject}/", "POST", record, idempotent=False, recover=landed)
        return str(answer["id"])

    async def patch(self, sobject: str, record_id: str, record: Record) -> None:
        await self._rest(f"sobjects/{sobject}/{record_id}", "PATCH", record)

    async def _rest(
        self,
        path: str,
        method: str = "GET",
        body: Any = None,
        *,
        idempotent: bool = True,
        recover: Callable[[], Awaitable[Any]] | None = None,
    ) -> Any:
        data = None if body is None else json_text(body)

        def send(sf: Salesforce) -> Any:
            return sf.restful(path, method=method, data=data)

        return await self.caller.call(send, idempotent=idempotent, recover=recover)
