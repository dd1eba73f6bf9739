"""Keeps the ``tenant`` partitions in step with the tenant registry."""

import dagster as dg

from crm_pipeline.defs.partitions import TENANT_PARTITIONS, missing_tenant_partitions, tenant_partitions
from crm_pipeline.defs.resources import TenantsResource


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def tenant_partitions_sensor(context: dg.SensorEvaluationContext, tenants: TenantsResource) -> dg.SensorResult:
    """Adds a partition for each new active tenant (the registry's active tenants in one query;
    ``missing_tenant_partitions``)."""
    new = missing_tenant_partitions(context.instance.get_dynamic_partitions(TENANT_PARTITIONS), tenants.active())
    return dg.SensorResult(dynamic_partitions_requests=[tenant_partitions.build_add_request(new)] if new else [])
