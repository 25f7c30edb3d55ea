"""Portal-shaped submissions for tests (the builders live in ``adapter.devkit.portal``)."""

from adapter.devkit.portal import WALLET, body, portal_spec, sign

__all__ = ("WALLET", "body", "portal_spec", "sign")
