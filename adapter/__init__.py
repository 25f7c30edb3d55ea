"""Beacon cross-region adapter: a reverse proxy in front of the Project Beacon runner."""

__version__ = "0.1.0"
