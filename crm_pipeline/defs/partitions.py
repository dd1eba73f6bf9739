"""The ``tenant`` partitions: one per configured tenant, kept in step by ``tenant_partitions_sensor``
(or, for an instance no daemon serves, by `crm-pipeline dagster-home`)."""

from collections.abc import Iterable

import dagster as dg

from crm_pipeline.tenants import TenantConnection

TENANT_PARTITIONS = "tenant"

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS)


def missing_tenant_partitions(known: Iterable[str], tenants: Iterable[TenantConnection]) -> list[str]:
    """The active tenants that have no partition yet, in the tenants' order. Partitions of removed
    or paused tenants stay: their history is kept, and the schedule only runs active ones."""
    present = set(known)
    return [tenant.tenant_id for tenant in tenants if tenant.active and tenant.tenant_id not in present]
