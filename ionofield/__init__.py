"""ionofield: 3-D ionospheric electron density from RO profiles, TEC maps and indices."""

from ionofield._version import __version__

__all__ = ["__version__"]
