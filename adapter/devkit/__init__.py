"""Development kit: the reference runner, the demo and portal-shaped test data.

Not needed to run the adapter in production.
"""
