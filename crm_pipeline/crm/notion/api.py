"""The Notion endpoints the adapter uses, typed: every response is checked at this boundary.

notion-client 3.x returns untyped dicts. Each method here sends one request through
``NotionCaller`` (pacing and retries) and validates the answer into the ``TypedDict`` shape the
adapter reads, so a malformed response fails here, naming the endpoint, instead of as a KeyError
deep in the sync. Only the keys the adapter reads are declared (others are dropped); property
values stay raw JSON, which the codecs (codecs.py) decode with their own checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NotRequired, TypeVar

from pydantic import TypeAdapter, ValidationError

# pydantic validates TypedDicts only from typing_extensions before Python 3.12.
from typing_extensions import TypedDict

from crm_pipeline.crm.notion.client import NotionCaller
from crm_pipeline.crm.notion.errors import UnexpectedResponseError

if TYPE_CHECKING:
    from notion_client import AsyncClient

T = TypeVar("T")

JSONObject = dict[str, Any]
"""A JSON object as Notion sends it (property values, schema entries), decoded by codecs.py."""


class DataSourceRef(TypedDict):
    id: str
    name: NotRequired[str]


class Database(TypedDict):
    id: str
    data_sources: list[DataSourceRef]


class DataSource(TypedDict):
    id: str
    properties: dict[str, JSONObject]
    """Property name -> schema entry (``id``, ``name``, ``type`` and the type's configuration)."""


class UserRef(TypedDict):
    id: str


class Parent(TypedDict, total=False):
    type: str
    data_source_id: str
    database_id: str
    page_id: str


class Page(TypedDict):
    id: str
    created_time: str
    last_edited_time: str
    properties: dict[str, JSONObject]
    parent: NotRequired[Parent]
    last_edited_by: NotRequired[UserRef]
    in_trash: NotRequired[bool]
    archived: NotRequired[bool]


class RequestStatus(TypedDict, total=False):
    type: str
    incomplete_reason: str


class PageList(TypedDict):
    results: list[Page]
    next_cursor: str | None
    has_more: bool
    request_status: NotRequired[RequestStatus | None]


class RichTextItem(TypedDict, total=False):
    plain_text: str


class Paragraph(TypedDict, total=False):
    rich_text: list[RichTextItem]


class Block(TypedDict):
    id: str
    type: NotRequired[str]
    paragraph: NotRequired[Paragraph]


class BlockList(TypedDict):
    results: list[Block]
    next_cursor: NotRequired[str | None]
    has_more: NotRequired[bool]


_DATABASE = TypeAdapter(Database)
_DATA_SOURCE = TypeAdapter(DataSource)
_USER = TypeAdapter(UserRef)
_PAGE = TypeAdapter(Page)
_PAGE_LIST = TypeAdapter(PageList)
_BLOCK_LIST = TypeAdapter(BlockList)


def _checked(adapter: TypeAdapter[T], endpoint: str, response: object) -> T:
    try:
        return adapter.validate_python(response)
    except ValidationError as error:
        raise UnexpectedResponseError(endpoint, error) from error


class NotionAPI:
    """Typed access to the endpoints in use, each call paced and retried by ``caller``."""

    def __init__(self, client: AsyncClient, caller: NotionCaller) -> None:
        self.client = client
        self._caller = caller

    async def _send(
        self,
        adapter: TypeAdapter[T],
        endpoint: str,
        send: Callable[[], Awaitable[object]],
    ) -> T:
        async def checked() -> T:
            return _checked(adapter, endpoint, await send())

        return await self._caller.call(checked)

    async def retrieve_database(self, database_id: str) -> Database:
        return await self._send(_DATABASE, "databases.retrieve", lambda: self.client.databases.retrieve(database_id))

    async def create_database(self, body: Mapping[str, Any]) -> Database:
        """Create a database (``parent``, ``title``, ``initial_data_source``). Never resent after an
        uncertain failure: a second database could land beside the first."""

        async def create() -> Database:
            return _checked(_DATABASE, "databases.create", await self.client.databases.create(**body))

        return await self._caller.call(create, idempotent=False)

    async def retrieve_data_source(self, data_source_id: str) -> DataSource:
        return await self._send(
            _DATA_SOURCE, "data_sources.retrieve", lambda: self.client.data_sources.retrieve(data_source_id)
        )

    async def me(self) -> UserRef:
        return await self._send(_USER, "users.me", lambda: self.client.users.me())

    async def retrieve_page(self, page_id: str) -> Page:
        return await self._send(_PAGE, "pages.retrieve", lambda: self.client.pages.retrieve(page_id))

    async def update_page(
        self,
        page_id: str,
        *,
        properties: Mapping[str, Any] | None = None,
        in_trash: bool | None = None,
        resend_when_uncertain: bool = True,
    ) -> Page:
        """PATCH a page. With ``resend_when_uncertain=False`` a failure that may have been applied
        (timeout, 5xx) is raised instead of resent, so the caller can read the page first."""
        body: dict[str, Any] = {}
        if properties is not None:
            body["properties"] = properties
        if in_trash is not None:
            body["in_trash"] = in_trash

        async def update() -> Page:
            return _checked(_PAGE, "pages.update", await self.client.pages.update(page_id, **body))

        return await self._caller.call(update, idempotent=resend_when_uncertain)

    async def query_data_source(self, data_source_id: str, body: Mapping[str, Any]) -> PageList:
        return await self._send(
            _PAGE_LIST,
            "data_sources.query",
            lambda: self.client.data_sources.query(data_source_id=data_source_id, **body),
        )

    async def list_block_children(self, block_id: str, start_cursor: str | None = None) -> BlockList:
        cursor = {} if start_cursor is None else {"start_cursor": start_cursor}
        return await self._send(
            _BLOCK_LIST,
            "blocks.children.list",
            lambda: self.client.blocks.children.list(block_id, page_size=100, **cursor),
        )

    async def create_page(
        self,
        data_source_id: str,
        properties: Mapping[str, Any],
        *,
        recover: Callable[[], Awaitable[str | None]] | None,
    ) -> str:
        """Create a page; its id. Not resent blindly after an uncertain failure: only once
        ``recover`` (when given) has found no page, and the id it finds is returned instead."""

        async def create() -> str:
            page = _checked(
                _PAGE,
                "pages.create",
                await self.client.pages.create(
                    parent={"type": "data_source_id", "data_source_id": data_source_id},
                    properties=properties,
                ),
            )
            return page["id"]

        return await self._caller.call(create, idempotent=False, recover=recover)

    async def append_block_children(
        self,
        block_id: str,
        children: Sequence[Mapping[str, Any]],
        *,
        recover: Callable[[], Awaitable[str | None]],
    ) -> str:
        """Append blocks; the id of the last one. After an uncertain failure ``recover`` looks for
        the block first and its id is returned if it landed."""

        async def append() -> str:
            response = _checked(
                _BLOCK_LIST,
                "blocks.children.append",
                await self.client.blocks.children.append(block_id, children=children),
            )
            if not response["results"]:
                raise UnexpectedResponseError("blocks.children.append", "no blocks in the response")
            return response["results"][-1]["id"]

        return await self._caller.call(append, idempotent=False, recover=recover)
