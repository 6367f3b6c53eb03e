"""Pushing approved invoices to Stripe exactly once: jobs, steps, customers, tax rates."""
