"""Approval and holds: the invoice state machine, four-eyes, thresholds, timeline."""
