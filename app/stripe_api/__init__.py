"""Talking to Stripe: the one gateway every Stripe request goes through."""
