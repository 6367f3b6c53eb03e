"""Billing rules (admin): when a deal is ready to bill, the invoice defaults, and how
Pipedrive's taxes and products map to Stripe's. Other packages read them through
`app.rules.settings`."""
