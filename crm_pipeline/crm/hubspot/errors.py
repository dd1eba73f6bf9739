"""Errors of the HubSpot connector (beyond the shared ones in ``crm_pipeline.crm.errors``)."""

from __future__ import annotations

from crm_pipeline.crm.errors import WriteRefusedError

__all__ = ["PipelineConfigError", "RestoreUnsupportedError", "WriteRefusedError"]


class PipelineConfigError(ValueError):
    """The configured deal pipeline, or a stage the stage map names, is not in the portal: every
    deal is affected, so a sync pass stops and says so."""


class RestoreUnsupportedError(NotImplementedError):
    """HubSpot's API has no restore: a person restores a deal from the recycling bin in HubSpot
    (within 90 days), and the sync then reads it back as modified."""

    def __init__(self, external_id: str) -> None:
        self.external_id = external_id
        super().__init__(
            f"{external_id}: HubSpot's API cannot restore a deal; restore it from the recycling bin in HubSpot"
        )
