"""The sandbox's HTTP resources: one module per resource, each registering its routes."""
