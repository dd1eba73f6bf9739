"""A local Salesforce REST API that behaves like Salesforce where sync correctness depends on it."""
