"""The `cachewise` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

from . import (  # each registers its commands on `main`
    analyze_cmds,
    cost_cmd,
    dashboard_cmd,
    doctor_cmd,
    emulate_cmd,
    models_cmd,
    proxy_cmd,
    report_cmd,
    run_cmds,
    simulate_cmd,
    worker_cmd,
)
from .main import main

__all__ = [
    "analyze_cmds",
    "cost_cmd",
    "dashboard_cmd",
    "doctor_cmd",
    "emulate_cmd",
    "main",
    "models_cmd",
    "proxy_cmd",
    "report_cmd",
    "run_cmds",
    "simulate_cmd",
    "worker_cmd",
]
