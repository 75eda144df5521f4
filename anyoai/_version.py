"""The installed version of anyoai."""

__version__ = "0.1.0"
