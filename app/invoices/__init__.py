"""Invoices: drafting, editing, totals exactly as Stripe computes them."""
