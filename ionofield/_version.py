"""Single source of the ionofield version."""

__version__ = "0.1.0"
