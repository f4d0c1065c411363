"""The `cachewise` command: a thin shell over the library, one module per command group, each
imported when one of its commands runs (`main.COMMANDS`)."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
