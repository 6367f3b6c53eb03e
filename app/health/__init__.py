"""Sync health: every recorded run, the scheduler's plan, and "Run now"."""
