"""The sync as assets: each side's changes, the reconciliation, and the writes to each side."""
