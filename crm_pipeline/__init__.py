"""crm_pipeline: two-way sync between the agent's PostgreSQL deal store and external CRMs."""

__version__ = "0.1.0"
