"""Writing push results back to Pipedrive through an outbox: deal fields, notes, stages."""
