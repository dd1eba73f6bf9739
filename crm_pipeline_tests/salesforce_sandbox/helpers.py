"""What the local Salesforce's tests share: a valid opportunity body and a refused call's error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from simple_salesforce.exceptions import SalesforceError

from crm_pipeline.salesforce_sandbox.ids import make_id

MISSING_ID = make_id("006", 99_999)
"""A well-formed opportunity id no record has."""


def opportunity(**fields: Any) -> dict[str, Any]:
    """An opportunity body with the three required fields (overridable)."""
    return {"Name": "Acme renewal", "StageName": "Prospecting", "CloseDate": "2026-03-31", **fields}


def refused(call: Callable[[], Any], kind: type[SalesforceError] = SalesforceError) -> tuple[int, list[Any]]:
    """The status and the parsed error list of a call simple-salesforce raised ``kind`` for."""
    with pytest.raises(kind) as raised:
        call()
    return raised.value.status, raised.value.content  # type: ignore[return-value]
