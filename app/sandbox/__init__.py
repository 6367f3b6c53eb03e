"""Local stand-ins for Pipedrive and Stripe.

Each sandbox is a real HTTP server speaking the vendor's own paths, auth and JSON,
so the desk's production clients talk to it unchanged. They exist for the tests,
the benchmarks and the offline demo; they are never imported by the desk itself.
"""
