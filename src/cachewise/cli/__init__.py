"""The `cachewise` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

from . import analyze_cmds, cost_cmd, emulate_cmd, models_cmd  # each registers on `main`
from .main import main

__all__ = ["analyze_cmds", "cost_cmd", "emulate_cmd", "main", "models_cmd"]
