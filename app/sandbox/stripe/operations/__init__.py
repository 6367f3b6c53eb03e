"""The Stripe sandbox's state operations, one mixin of ``StripeSandbox`` per resource."""
