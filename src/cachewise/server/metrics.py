"""`/metrics`: what the proxy's calls did, in Prometheus's text format.

Counted from the same ledger rows the proxy writes (tokens by kind, dollars spent and what the
same prompts would have cost uncached, calls and errors), so the totals here and `cachewise
report`'s over the same calls are equal. Each series is labelled by model, workspace (the key's
one-way hash, never the key) and whether the emulator answered (its calls cost nothing real).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..ledger import CallRecord
from ..usage import Tally

__all__ = ["Metrics"]

_Labels = tuple[str, str, str]  # model, workspace, emulated
_LABELS = ["model", "workspace", "emulated"]
_TOKENS = (
    ("input", "input_tokens"),
    ("cache_read", "cache_read_input_tokens"),
    ("cache_write_5m", "ephemeral_5m_input_tokens"),
    ("cache_write_1h", "ephemeral_1h_input_tokens"),
    ("output", "output_tokens"),
)


class Metrics(Collector):
    """The proxy's counters; `observe` each ledger row, `render` for a scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._tallies: dict[_Labels, Tally] = {}
        self._upstream_errors: dict[tuple[str, str], int] = {}
        self._gate: dict[str, int] = {}
        self.gate_wait = Histogram(
            "cachewise_gate_wait_seconds",
            "Time calls waited for the scout writing their prefix.",
            ["role"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.registry.register(self)

    def observe(self, rec: CallRecord) -> None:
        labels = (rec.model, rec.workspace or "", "true" if rec.emulated else "false")
        with self._lock:
            tally = self._tallies.setdefault(labels, Tally())
            tally.add(rec.usage, rec.cost_usd, rec.cost_without_cache_usd, error=rec.status != "ok")
            if rec.status != "ok":
                key = (rec.model, rec.error_type or "unknown")
                self._upstream_errors[key] = self._upstream_errors.get(key, 0) + 1
            if rec.gate_role:
                self._gate[rec.gate_role] = self._gate.get(rec.gate_role, 0) + 1
        if rec.gate_role in ("follower", "timeout"):
            self.gate_wait.labels(rec.gate_role).observe(rec.gate_wait_s or 0.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            tallies = {k: _copy(t) for k, t in self._tallies.items()}
            errors = dict(self._upstream_errors)
            gate = dict(self._gate)
        calls = CounterMetricFamily("cachewise_calls", "Calls through the proxy.", labels=_LABELS)
        failed = CounterMetricFamily(
            "cachewise_call_errors", "Calls that ended in an error.", labels=_LABELS
        )
        tokens = CounterMetricFamily(
            "cachewise_tokens", "Tokens, by kind.", labels=[*_LABELS, "kind"]
        )
        cost = CounterMetricFamily("cachewise_cost_usd", "Dollars spent.", labels=_LABELS)
        uncached = CounterMetricFamily(
            "cachewise_cost_without_cache_usd",
            "Dollars the same calls would have cost with no caching.",
            labels=_LABELS,
        )
        saved = CounterMetricFamily("cachewise_saved_usd", "Dollars caching saved.", labels=_LABELS)
        hit = GaugeMetricFamily(
            "cachewise_cache_hit_ratio", "Cache reads over all prompt tokens.", labels=_LABELS
        )
        for labels, t in sorted(tallies.items()):
            values = list(labels)
            calls.add_metric(values, t.calls)
            failed.add_metric(values, t.errors)
            for kind, name in _TOKENS:
                tokens.add_metric([*values, kind], getattr(t.usage, name))
            cost.add_metric(values, float(t.cost_usd))
            uncached.add_metric(values, float(t.cost_without_cache_usd))
            saved.add_metric(values, float(t.cost_without_cache_usd - t.cost_usd))
            hit.add_metric(values, t.hit_rate)
        upstream = CounterMetricFamily(
            "cachewise_upstream_errors",
            "Calls that failed, by error type.",
            labels=["model", "type"],
        )
        for (model, kind), n in sorted(errors.items()):
            upstream.add_metric([model, kind], n)
        roles = CounterMetricFamily(
            "cachewise_gate_calls", "Calls by the warm gate's verdict.", labels=["role"]
        )
        for role, n in sorted(gate.items()):
            roles.add_metric([role], n)
        yield from (calls, failed, tokens, cost, uncached, saved, hit, upstream, roles)


def _copy(t: Tally) -> Tally:
    return Tally(
        t.calls, t.errors, t.usage, t.cost_usd, t.cost_without_cache_usd, t.writes, t.reads
    )
