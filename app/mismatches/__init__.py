"""The mismatch board: where Pipedrive, the desk and Stripe disagree, and what fixes it."""
