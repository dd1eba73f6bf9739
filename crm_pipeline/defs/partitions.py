"""The ``tenant`` partitions: one per configured tenant, kept in step by ``tenant_partitions_sensor``."""

import dagster as dg

TENANT_PARTITIONS = "tenant"

tenant_partitions = dg.DynamicPartitionsDefinition(name=TENANT_PARTITIONS)
