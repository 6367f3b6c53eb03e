"""users capability (admin): the users page, roles, invitations and password resets.

See routes.py (views), operations.py (state changes), models.py (invitations).
"""
