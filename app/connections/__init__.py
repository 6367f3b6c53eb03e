"""connections capability (admin): the Pipedrive and Stripe connections.

store.py is what the rest of the desk calls (`effective`, `pipedrive_auth`);
secrets are kept encrypted (Fernet) in the `desk_setting` table.
"""
