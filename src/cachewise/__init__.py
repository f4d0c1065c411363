"""cachewise: make Claude API calls prompt-cache-optimal, and prove it.

The public API is small on purpose; everything else is importable from its module but may change.
"""

from __future__ import annotations

from .__about__ import __version__
from .catalog import Model, get_model
from .client import wrap
from .cost import Cost, Usage, cost
from .engine import Account, Engine
from .errors import CachewiseError, InputError, InvalidRequest, PricingError, UnknownModel
from .ledger import Ledger
from .request import Prompt, parse_request
from .tokens import Tokenizer

__all__ = [
    "Account",
    "CachewiseError",
    "Cost",
    "Engine",
    "InputError",
    "InvalidRequest",
    "Ledger",
    "Model",
    "PricingError",
    "Prompt",
    "Tokenizer",
    "UnknownModel",
    "Usage",
    "__version__",
    "cost",
    "get_model",
    "parse_request",
    "wrap",
]
