"""Deal intake: local snapshots of Pipedrive deals and the ready-to-bill queue."""
