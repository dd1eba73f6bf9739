"""How the Notion connector classifies failures, on the errors notion-client raises for the sandbox's
real error bodies: by Notion's error codes, never by message text."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import pytest
from notion_client import APIErrorCode, APIResponseError, RequestTimeoutError, UnknownHTTPResponseError

from crm_pipeline.crm.notion import NotionAdapter, PageTrashedError
from crm_pipeline.crm.notion.client import error_code, is_retryable, is_uncertain, retry_after_seconds, status_of
from crm_pipeline.models import OpportunityCreate, OpportunityUpdate
from crm_pipeline_tests.crm.conftest import HANG_SECONDS, HANG_TIMEOUT_S, Workspace

pytestmark = pytest.mark.integration


async def _raised_by_update(adapter: NotionAdapter, page_id: str) -> BaseException:
    """The error the SDK raises for one PATCH of a page (its own retries are off)."""
    with pytest.raises(Exception) as raised:
        await adapter.client.pages.update(page_id, properties={})
    return raised.value


@pytest.mark.parametrize(
    ("kind", "status", "code", "sdk_error", "uncertain"),
    [
        ("409", 409, APIErrorCode.ConflictError.value, APIResponseError, True),
        ("500", 500, APIErrorCode.InternalServerError.value, APIResponseError, True),
        ("503", 503, APIErrorCode.ServiceUnavailable.value, APIResponseError, True),
        ("504", 504, APIErrorCode.GatewayTimeout.value, APIResponseError, True),
        # notion-client 3.1 does not know service_overload: the code is read from the JSON body
        ("529", 529, "service_overload", UnknownHTTPResponseError, True),
        # a gateway's HTML page carries no code: retried as a 5xx answer
        ("502", 502, None, UnknownHTTPResponseError, True),
    ],
)
async def test_transient_answers_are_retryable_by_code(
    notion: NotionAdapter,
    workspace: Workspace,
    kind: str,
    status: int,
    code: str | None,
    sdk_error: type[Exception],
    uncertain: bool,
) -> None:
    page_id = await notion.create_opportunity(OpportunityCreate(id=uuid4(), name="Acme"))
    workspace.control.add_fault(kind, method="PATCH", path="/v1/pages/*")
    error = await _raised_by_update(notion, page_id)
    assert type(error) is sdk_error
    assert (status_of(error), error_code(error)) == (status, code)
    assert is_retryable(error) and is_uncertain(error) is uncertain
    assert retry_after_seconds(error) is None  # only rate-limited answers carry a wait


async def test_a_rate_limited_answer_waits_for_retry_after_and_was_not_applied(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    page_id = await notion.create_opportunity(OpportunityCreate(id=uuid4(), name="Acme"))
    workspace.control.configure(rate_limit=0.001, burst=1)  # one request, then none for ~17 minutes
    try:
        await notion.client.pages.retrieve(page_id)
        error = await _raised_by_update(notion, page_id)
    finally:
        workspace.control.configure(rate_limit=0)
    assert isinstance(error, APIResponseError) and error.code is APIErrorCode.RateLimited
    assert error.additional_data == {"rate_limit_reason": "public_api_request_rate_limit"}
    assert is_retryable(error) and not is_uncertain(error)  # refused up front: safe to resend
    wait = retry_after_seconds(error)
    assert wait is not None and wait >= 1


async def test_client_errors_are_not_retried(notion: NotionAdapter, workspace: Workspace) -> None:
    with pytest.raises(APIResponseError) as missing:
        await notion.client.pages.retrieve(str(uuid4()))
    with pytest.raises(APIResponseError) as malformed:
        await notion.client.pages.retrieve("not-a-page-id")
    assert error_code(missing.value) == APIErrorCode.ObjectNotFound.value
    assert error_code(malformed.value) == APIErrorCode.ValidationError.value
    assert not is_retryable(missing.value) and not is_retryable(malformed.value)


async def test_a_timeout_is_retryable_and_uncertain(workspace: Workspace) -> None:
    adapter = workspace.adapter(timeout_s=HANG_TIMEOUT_S)
    try:
        page_id = await adapter.create_opportunity(OpportunityCreate(id=uuid4(), name="Acme"))
        workspace.control.add_fault("hang", method="PATCH", path="/v1/pages/*", hang_seconds=HANG_SECONDS)
        error = await _raised_by_update(adapter, page_id)
    finally:
        await adapter.aclose()
    assert isinstance(error, RequestTimeoutError) and status_of(error) is None
    assert is_retryable(error) and is_uncertain(error)
    await workspace.hung_requests_answered("PATCH", "/v1/pages/{page_id}")


async def test_get_reads_not_found_and_a_malformed_id_as_no_deal(notion: NotionAdapter) -> None:
    assert await notion.get_opportunity(str(uuid4())) is None
    assert await notion.get_opportunity("not-a-page-id") is None


async def test_a_validation_error_mentioning_archived_is_not_taken_for_a_trashed_page(
    notion: NotionAdapter, workspace: Workspace
) -> None:
    """Only the page's own state says it is in the trash, not the wording of an error."""
    page_id = await notion.create_opportunity(OpportunityCreate(id=uuid4(), name="Acme"))
    # A human renames the Value column and makes it text: our number write is now refused, and the
    # refusal names the column.
    await notion.client.data_sources.update(
        workspace.data_source_id, properties={"Value": {"name": "Value (archived)", "rich_text": {}}}
    )
    with pytest.raises(APIResponseError) as raised:
        await notion.update_opportunity(page_id, OpportunityUpdate(estimated_value=Decimal(6)))
    assert raised.value.code is APIErrorCode.ValidationError and "archived" in str(raised.value)

    workspace.control.human_update_page(page_id, {"in_trash": True})
    with pytest.raises(PageTrashedError) as trashed:
        await notion.update_opportunity(page_id, OpportunityUpdate(name="too late"))
    assert trashed.value.page_id == page_id
