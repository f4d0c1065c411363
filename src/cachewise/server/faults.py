"""Reproducible fault injection for the emulator: `--faults "429:0.1,529@3+7,drop:0.02"`.

Each comma-separated item is `KIND[=PARAM]:RATE` (fires on that fraction of requests) or
`KIND[=PARAM]@N[+N...]` (fires on those 1-based request numbers). Kinds:

| kind | effect |
|---|---|
| `429` | `rate_limit_error` with `retry-after` (PARAM seconds, default 1) |
| `529` | `overloaded_error` |
| `500` | `api_error` |
| `slow` | the first byte comes PARAM ms later (default 2000) |
| `drop` | the connection closes before a complete response |
| `midstream` | a streamed response stops with an `error` event (`overloaded_error`) |

Items are checked in the order given; the first that fires decides. Rates draw from one
`random.Random(seed)`, so the same seed and the same request order give the same faults.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from ..errors import InputError

__all__ = ["Fault", "FaultPlan", "parse_faults"]

KINDS = {"429": 1.0, "529": 0.0, "500": 0.0, "slow": 2000.0, "drop": 0.0, "midstream": 0.0}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"  # what float() reads: not "." or "1.2.3"
_ITEM = re.compile(
    rf"^(?P<kind>[a-z0-9]+)(?:=(?P<param>{_NUMBER}))?"
    rf"(?::(?P<rate>{_NUMBER})|@(?P<nums>[0-9]+(?:\+[0-9]+)*))$"
)


@dataclass(frozen=True)
class Fault:
    kind: str
    param: float
    rate: float = 0.0
    requests: frozenset[int] = frozenset()


@dataclass
class FaultPlan:
    """Decides, request by request, which fault (if any) to inject."""

    faults: tuple[Fault, ...] = ()
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self, number: int) -> Fault | None:
        """The fault for the `number`th request (1-based), drawing every rate so that the
        sequence of draws does not depend on which fault fired."""
        chosen = None
        for fault in self.faults:
            hit = number in fault.requests if fault.requests else self._rng.random() < fault.rate
            if hit and chosen is None:
                chosen = fault
        return chosen


def parse_faults(spec: str | None, seed: int | None = None) -> FaultPlan:
    """Parse a `--faults` spec.

    Raises:
        InputError: an item is not of the documented form.
    """
    faults = []
    for raw in (spec or "").split(","):
        item = raw.strip()
        if not item:
            continue
        m = _ITEM.match(item)
        if not m or m["kind"] not in KINDS:
            raise InputError(
                f"fault {item!r} is not KIND[=PARAM]:RATE or KIND[=PARAM]@N+N; kinds: "
                + ", ".join(KINDS),
                field="--faults",
            )
        param = float(m["param"]) if m["param"] else KINDS[m["kind"]]
        if m["rate"] is not None:
            rate = float(m["rate"])
            if not 0 <= rate <= 1:
                raise InputError(f"fault {item!r}: rate must be between 0 and 1", field="--faults")
            faults.append(Fault(m["kind"], param, rate=rate))
        else:
            nums = frozenset(int(n) for n in m["nums"].split("+") if n)
            faults.append(Fault(m["kind"], param, requests=nums))
    return FaultPlan(tuple(faults), seed)
