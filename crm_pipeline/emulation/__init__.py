"""Machinery every local API emulator shares: the settable clock, strict JSON bodies, rate limiters,
scripted faults, latency, request statistics, how handlers become routes (the common control routes
among them), the request pipeline of the emulators that save their state, and the command line.
The emulators (`crm_pipeline.sandbox` for Notion, `crm_pipeline.hubspot_sandbox` for HubSpot,
`crm_pipeline.salesforce_sandbox` for Salesforce) add their API's routes and error shapes."""
