"""Salesforce's REST routes under ``/services/data/v{version}``: sObjects, describe, the change
lists, queries, sObject Collections and limits, and the OAuth user info under ``/services/oauth2``.
``API_ROUTES`` names the handlers of each path template; each answers with or without a trailing
slash, as Salesforce does."""

from __future__ import annotations

import functools
import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from crm_pipeline.emulation.routes import ALL_METHODS, emulator_of

from . import changes, composite, identity, query, sobjects
from .errors import SalesforceError
from .runtime import Handler, SalesforceSandbox

V = "/services/data/v{version}"
SOBJECT = V + "/sobjects/{object}"
API_ROUTES: list[tuple[str, dict[str, Handler]]] = [
    (V + "/limits", {"GET": sobjects.limits}),
    (V + "/sobjects", {"GET": sobjects.describe_global}),
    (SOBJECT, {"GET": sobjects.basic_info, "POST": sobjects.create}),
    (SOBJECT + "/describe", {"GET": sobjects.describe}),
    (SOBJECT + "/updated", {"GET": changes.updated}),
    (SOBJECT + "/deleted", {"GET": changes.deleted}),
    (SOBJECT + "/{record_id}", {"GET": sobjects.read, "PATCH": sobjects.update, "DELETE": sobjects.delete}),
    (SOBJECT + "/{field}/{value}", {"GET": sobjects.read_by_key, "PATCH": sobjects.upsert}),
    (V + "/query", {"GET": query.query}),
    (V + "/query/{cursor}", {"GET": query.query_more}),
    (V + "/queryAll", {"GET": query.query_all}),
    (V + "/queryAll/{cursor}", {"GET": query.query_more}),
    (
        V + "/composite/sobjects",
        {"POST": composite.create_many, "PATCH": composite.update_many, "DELETE": composite.delete_many},
    ),
    (V + "/composite/sobjects/{object}", {"GET": composite.retrieve_many}),
    (V + "/composite/sobjects/{object}/{field}", {"PATCH": composite.upsert_many}),
    ("/services/oauth2/userinfo", {"GET": identity.userinfo}),
]
"""Each path template with its handler per method."""


def api_routes() -> list[Route]:
    """Two Starlette routes per path template (with and without the trailing slash), each taking
    every method: one without a handler is Salesforce's 405."""
    routes = [Route("/services/data", _versions, methods=["GET"]), Route("/services/data/", _versions, methods=["GET"])]
    for path, handlers in API_ROUTES:
        serve = functools.partial(_serve, path, handlers)
        routes += [Route(path, serve, methods=ALL_METHODS), Route(path + "/", serve, methods=ALL_METHODS)]
    return routes


async def _versions(request: Request) -> Response:
    """The API versions the org speaks: public, no token needed."""
    sandbox: SalesforceSandbox = emulator_of(request)
    return Response(json.dumps(sobjects.versions()), media_type="application/json", headers=sandbox.answer_headers())


async def _serve(template: str, handlers: dict[str, Handler], request: Request) -> Response:
    sandbox: SalesforceSandbox = emulator_of(request)
    handler = handlers.get(request.method) or functools.partial(_not_allowed, request.method, list(handlers))
    return await sandbox.serve(request, f"{request.method} {template.removeprefix(V)}", handler)


def _not_allowed(method: str, allowed: list[str], _: object) -> None:
    message = f"HTTP Method '{method}' not allowed. Allowed are {','.join(allowed)}"
    raise SalesforceError(405, "METHOD_NOT_ALLOWED", message)
