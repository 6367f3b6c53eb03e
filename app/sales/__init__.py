"""The sales view: has this deal been paid? Summaries, aging, exports, and the
Pipedrive deal panel. Read-only: nothing here changes an invoice.

The /sales blueprint lives in app/sales/routes.py; the panel's own blueprint (framed by
Pipedrive, outside /sales) in app/sales/panel.py."""
