"""connections capability (admin): the Pipedrive and Stripe connections.

store.py is what the rest of the desk calls (`effective`); pipedrive_auth.py says how to
authenticate to Pipedrive (`pipedrive_auth`, `pipedrive_headers`);
secrets are kept encrypted (Fernet) in the `desk_setting` table.
"""
