"""The ready-to-bill queue and the deal page."""
