"""OAuth user info (``GET /services/oauth2/userinfo``): who the bearer token acts as, the
identity a connection without a configured username takes for its integration user."""

from __future__ import annotations

from typing import Any

from .ids import make_id
from .runtime import Call

ORG_ID = make_id("00D", 1)
"""The org's id: the first fifteen characters of its access tokens (``DEFAULT_TOKEN``)."""


def userinfo(call: Call) -> Any:
    """The token's user as Salesforce's user info names it: ``user_id`` (the 18-character id its
    writes are stamped with), ``organization_id``, ``preferred_username`` and the OpenID Connect
    claims built on them."""
    user = call.org.get("User", call.user_id, deleted_ok=True).values
    return {
        "sub": f"https://login.salesforce.com/id/{ORG_ID}/{user['Id']}",
        "user_id": user["Id"],
        "organization_id": ORG_ID,
        "preferred_username": user["Username"],
        "name": user["Name"],
        "email": user["Email"],
        "active": bool(user["IsActive"]),
        "user_type": "STANDARD",
    }
