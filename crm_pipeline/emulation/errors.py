"""The one failure the shared machinery raises; each emulator renders it in its API's error shape."""

from __future__ import annotations


class BadRequest(Exception):
    """A 400 from shared code (a body, a setting, a fault script). ``kind`` is ``validation`` or
    ``invalid_json``, which an emulator may answer differently."""

    def __init__(self, message: str, kind: str = "validation") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class RateLimited(Exception):
    """A request over a limit. ``retry_after_s`` is when it could succeed (None: the API does not
    say); ``policy`` names the limit that refused it."""

    def __init__(self, policy: str, retry_after_s: int | None = None) -> None:
        super().__init__(f"rate limited by {policy}")
        self.policy = policy
        self.retry_after_s = retry_after_s
