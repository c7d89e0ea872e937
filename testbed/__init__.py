"""Preprod testbed for retail recommendation models."""

__version__ = "0.1.0"
