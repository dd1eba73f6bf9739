"""The Dagster layer: resources, assets, checks and schedules that wire the core together."""
