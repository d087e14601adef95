"""The package version, sent as the worker's library version."""

__version__ = "0.1.0"
