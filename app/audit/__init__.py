"""audit capability: see routes.py, operations.py, models.py."""
