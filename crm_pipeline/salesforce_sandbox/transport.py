"""How ``simple-salesforce`` reaches the local org. The client always speaks https (it keeps only
host and port of ``instance_url``), while the sandbox serves plain HTTP on loopback, so a session
carries a transport adapter that sends the sandbox's https URLs as http."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce.api import Salesforce

from .config import DEFAULT_TOKEN

API_VERSION = "62.0"


class PlainHttpAdapter(HTTPAdapter):
    """Sends each https request it is mounted for as plain http."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, *args, **kwargs)


def sandbox_session(base_url: str) -> requests.Session:
    """A session whose requests to ``https://HOST:PORT`` of ``base_url`` (the sandbox's
    ``http://HOST:PORT``) go out as http; everything else is untouched."""
    session = requests.Session()
    session.mount("https://" + base_url.split("://", 1)[-1].rstrip("/"), PlainHttpAdapter())
    return session


def sandbox_salesforce(base_url: str, session_id: str = DEFAULT_TOKEN, version: str = API_VERSION) -> Salesforce:
    """``simple_salesforce.Salesforce`` in direct mode (a token, no login) on the sandbox."""
    return Salesforce(instance_url=base_url, session_id=session_id, version=version, session=sandbox_session(base_url))
