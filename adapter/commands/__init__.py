"""Operator commands of ``beacon-adapter`` (each module has ``add_parser``)."""
