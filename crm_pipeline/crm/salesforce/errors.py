"""Errors of the Salesforce connector (beyond the shared ones in ``crm_pipeline.crm.errors``)."""

from __future__ import annotations

from crm_pipeline.crm.budget import DailyBudgetSpentError
from crm_pipeline.crm.errors import WriteRefusedError

__all__ = [
    "AllowanceFloorError",
    "OrgBusyError",
    "SessionExpiredError",
    "StageConfigError",
    "WriteRefusedError",
]


class SessionExpiredError(RuntimeError):
    """Salesforce refused the access token (401 ``INVALID_SESSION_ID``, or OAuth user info's 403):
    expired or revoked. Every request would fail the same way, so the pass stops; it names where
    the tenant's token comes from (``token_ref``, e.g. an environment variable), never the token."""

    def __init__(self, token_ref: str) -> None:
        self.token_ref = token_ref
        super().__init__(
            f"Salesforce refused the access token from {token_ref} (expired or revoked); "
            "put a fresh token there and the next pass resumes"
        )


class AllowanceFloorError(DailyBudgetSpentError):
    """The org's daily API allowance is down to the floor kept for its people's other tools (read
    from ``Sforce-Limit-Info``), or Salesforce answered ``REQUEST_LIMIT_EXCEEDED``: never waited
    out here, a later pass resumes."""

    def __init__(self, key: str, used: int, total: int, floor: int) -> None:
        RuntimeError.__init__(
            self,
            f"the org has used {used} of its {total} daily API requests; the sync leaves the last {floor} "
            "to the org's other tools, and a later pass resumes",
        )
        self.key, self.per_day = key, total
        self.used, self.total, self.floor = used, total, floor


class OrgBusyError(RuntimeError):
    """``REQUEST_LIMIT_EXCEEDED`` while the day's allowance is not spent (the answer's own usage
    says so): the org's concurrent long-running requests are at their limit. Nothing was done;
    waited out with backoff like any transient refusal."""

    def __init__(self) -> None:
        super().__init__(
            "Salesforce refused the request: the org's concurrent long-running requests are at their limit"
        )


class InstanceConfigError(ValueError):
    """A Salesforce connection with a token names no instance URL: Salesforce has no one public
    address, each org answers at its own (``https://acme.my.salesforce.com``)."""


class StageConfigError(ValueError):
    """A stage the stage table maps to is not an active Opportunity stage of the org: every deal in
    that stage is affected, so set-up fails and says which."""
