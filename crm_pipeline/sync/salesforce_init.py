"""`crm-pipeline salesforce-init --verify`: check a Salesforce org the way the sync uses it.

It asks what the adapter's set-up asks (Opportunity's describe, the active stages, the integration
user) and names each problem: no ``Sync_Key__c``, a key that is not External ID and Unique, a
mapped custom field missing, of another type or not writable, a stage the stage table needs
absent. The token is read from the environment variable ``--token-env`` names (never printed).
Exit 0 when the org fits; 2, with the reasons, when it does not or cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import requests
from simple_salesforce.exceptions import SalesforceError

from crm_pipeline.crm.salesforce import SalesforceAdapter, SessionExpiredError
from crm_pipeline.crm.salesforce.mapping import SALESFORCE_FIELD_MAP, SYNC_KEY_FIELD
from crm_pipeline.sync.cli import CANNOT_RUN

TOKEN_ENV_DEFAULT = "CRM_PIPELINE_SALESFORCE_TOKEN"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("salesforce-init", help="check a Salesforce org against the sync's mapping")
    parser.add_argument("--verify", action="store_true", required=True, help="check the org (nothing is changed)")
    parser.add_argument("--instance-url", required=True, help="the org's address, e.g. https://acme.my.salesforce.com")
    parser.add_argument("--token-env", default=TOKEN_ENV_DEFAULT, help="the variable holding the access token")
    parser.add_argument("--username", help="the integration user's username (default: the token's identity)")
    parser.set_defaults(handler=run)


async def verify_org(instance_url: str, token: str, token_env: str, username: str | None) -> list[Exception]:
    adapter = SalesforceAdapter(
        token, instance_url=instance_url, token_ref=f"env {token_env}", integration_username=username
    )
    try:
        return await adapter.verify()
    finally:
        await adapter.aclose()


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env)
    if not token:
        print(f"crm-pipeline salesforce-init: no access token in {args.token_env}", file=sys.stderr)
        return CANNOT_RUN
    try:
        problems = asyncio.run(verify_org(args.instance_url, token, args.token_env, args.username))
    except (SessionExpiredError, SalesforceError, requests.RequestException) as error:
        print(f"crm-pipeline salesforce-init: {error}", file=sys.stderr)
        return CANNOT_RUN
    if problems:
        print(f"The org at {args.instance_url} does not fit the mapping:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return CANNOT_RUN
    fields = ", ".join([SYNC_KEY_FIELD, *(spec.name for spec in SALESFORCE_FIELD_MAP.values() if spec.custom)])
    print(f"The org at {args.instance_url} fits: {fields} and every mapped stage are there.")
    return 0
