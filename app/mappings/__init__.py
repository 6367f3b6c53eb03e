"""Field mappings (admin): which Pipedrive field, chosen by name, holds each value the
desk reads (intake) or writes (write-back). Never shows or accepts a hash key."""
