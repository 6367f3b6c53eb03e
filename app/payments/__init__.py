"""Payment state from Stripe: events pulled and received by webhook, applied to invoices."""
