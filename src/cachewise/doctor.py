"""`cachewise doctor`: what is installed, where things are, and which optional services answer.

Every check is read-only: the ledger is opened read-only (never created, never migrated), and a
service is asked one question with a short timeout. A URL is shown without its password. A
check is `ok`, `warn` (works, but worth knowing), `skip` (nothing to check: a service nobody
named) or `fail` (something named or present does not work); the command exits 1 on any `fail`.
"""

from __future__ import annotations

import platform
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .__about__ import __version__
from .catalog import catalog
from .ledger import default_path
from .schema import MIGRATIONS

__all__ = ["Check", "Extra", "Report", "diagnose", "redact"]

# Extras for working on cachewise itself, not for using it.
_DEVELOPMENT_EXTRAS = frozenset({"dev", "docs"})


@dataclass
class Extra:
    """An optional extra (`pip install 'cachewise[NAME]'`) and whether its packages are here."""

    name: str
    packages: dict[str, str | None]  # package -> installed version, None when missing

    @property
    def installed(self) -> bool:
        return all(self.packages.values())


@dataclass
class Check:
    name: str
    status: str  # "ok" | "warn" | "skip" | "fail"
    detail: str
    target: str | None = None  # where it looked: a path or a URL without its password
    ms: float | None = None  # how long the service took to answer


@dataclass
class Report:
    version: str
    python: str
    platform: str
    extras: list[Extra] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "python": self.python,
            "platform": self.platform,
            "extras": [{**asdict(e), "installed": e.installed} for e in self.extras],
            "checks": [asdict(c) for c in self.checks],
            "ok": self.ok,
        }


def redact(url: str) -> str:
    """A URL without its user and password: `redis://…@host:6379/0`."""
    return re.sub(r"//[^@/]*@", "//…@", url)


def diagnose(
    *,
    ledger: str | None = None,
    redis_url: str | None = None,
    postgres_url: str | None = None,
    timeout: float = 2.0,
) -> Report:
    """Everything `cachewise doctor` reports. `ledger` defaults to the default ledger; a service
    without a URL is skipped rather than guessed at."""
    report = Report(
        version=__version__,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        platform=f"{platform.system()} {platform.machine()}",
        extras=extras(),
    )
    report.checks.append(_catalog())
    report.checks.append(_ledger(ledger or str(default_path()), timeout))
    report.checks.append(_redis(redis_url, timeout))
    report.checks.append(_postgres(postgres_url, timeout))
    return report


def extras() -> list[Extra]:
    """The extras this installation declares, from its own metadata (so a new extra is listed
    without changing this module); none when cachewise runs from a source tree uninstalled."""
    try:
        dist = metadata.distribution("cachewise")
    except metadata.PackageNotFoundError:
        return []
    requirements = dist.requires or []
    found = []
    for name in dist.metadata.get_all("Provides-Extra") or []:
        if name in _DEVELOPMENT_EXTRAS:
            continue
        marker = re.compile(rf"extra\s*==\s*['\"]{re.escape(name)}['\"]")
        packages = {
            _requirement_name(r): _installed(_requirement_name(r))
            for r in requirements
            if marker.search(r)
        }
        found.append(Extra(name, packages))
    return found


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    return match[0] if match else requirement


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _catalog() -> Check:
    cat = catalog()
    pricing = cat.data.get("sources", {}).get("PRICING", "the pricing page")
    return Check(
        "catalog",
        "ok",
        f"{len(cat.models)} models; prices and minimums as of {cat.as_of} ({pricing})",
    )


def _ledger(target: str, timeout: float) -> Check:
    if target.startswith(("postgresql://", "postgres://")):
        try:
            conn, ms = _pg_connect(target, timeout)
        except Exception as exc:  # every failure is the answer here, whatever raised it
            return Check("ledger", "fail", _why(exc), redact(target))
        with conn:
            return _ledger_rows(conn, redact(target), ms)
    path = Path(target).expanduser()
    if not path.exists():
        why = "not created yet (wrap, run and the proxy create it with their first call)"
        return Check("ledger", "ok", why, target)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    except sqlite3.Error as exc:
        return Check("ledger", "fail", f"cannot open it: {exc}", target)
    try:
        return _ledger_rows(conn, target, None)
    finally:
        conn.close()


def _ledger_rows(conn: Any, target: str, ms: float | None) -> Check:
    try:
        applied = {r[0] for r in conn.execute("SELECT name FROM _cachewise_migrations")}
        total = conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except Exception as exc:
        return Check("ledger", "fail", f"not a cachewise ledger ({_why(exc)})", target, ms)
    detail = f"{total:,} call{'' if total == 1 else 's'}"
    if "m002_uid_and_emulated" in applied:  # older ledgers cannot tell rehearsals apart
        emulated = conn.execute("SELECT COALESCE(SUM(emulated), 0) FROM calls").fetchone()[0]
        detail += f" ({emulated:,} emulated)"
    known = [name for name, _ in MIGRATIONS]
    pending = [name for name in known if name not in applied]
    newer = sorted(applied - set(known))
    if newer:
        return Check(
            "ledger",
            "warn",
            f"{detail}; written by a newer cachewise (migrations {', '.join(newer)})",
            target,
            ms,
        )
    if pending:
        detail += f"; {len(pending)} migration(s) to apply when a writer next opens it"
    return Check("ledger", "ok", detail, target, ms)


def _redis(url: str | None, timeout: float) -> Check:
    if not url:
        return Check("redis", "skip", "not named (--redis URL or CACHEWISE_REDIS_URL)")
    try:
        import redis
    except ImportError:
        return Check("redis", "fail", "needs the proxy extra: pip install 'cachewise[proxy]'")
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    start = time.perf_counter()
    try:
        version = client.info("server").get("redis_version", "?")
    except (redis.RedisError, OSError) as exc:
        return Check("redis", "fail", f"no answer: {_why(exc)}", redact(url))
    finally:
        client.close()
    ms = (time.perf_counter() - start) * 1000
    return Check("redis", "ok", f"Redis {version} answered", redact(url), ms)


def _postgres(url: str | None, timeout: float) -> Check:
    if not url:
        return Check("postgresql", "skip", "not named (--postgres URL or CACHEWISE_POSTGRES_URL)")
    try:
        conn, ms = _pg_connect(url, timeout)
    except Exception as exc:  # ImportError, psycopg's errors, a malformed URL: all the answer
        return Check("postgresql", "fail", _why(exc), redact(url))
    with conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return Check("postgresql", "ok", f"PostgreSQL {version} answered", redact(url), ms)


def _pg_connect(url: str, timeout: float) -> tuple[Any, float]:
    try:
        import psycopg
    except ImportError:
        raise RuntimeError("needs the postgres extra: pip install 'cachewise[postgres]'") from None
    start = time.perf_counter()
    # libpq takes whole seconds and treats anything under 2 as 2.
    conn = psycopg.connect(url, connect_timeout=max(2, round(timeout)), autocommit=True)
    return conn, (time.perf_counter() - start) * 1000


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0] if text else type(exc).__name__)
