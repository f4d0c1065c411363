"""The `cachewise` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

from . import cost_cmd, emulate_cmd, models_cmd  # each registers its commands on `main`
from .main import main

__all__ = ["cost_cmd", "emulate_cmd", "main", "models_cmd"]
