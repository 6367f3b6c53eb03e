"""Talking to Pipedrive: the one client every Pipedrive request goes through."""
