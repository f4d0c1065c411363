"""`cachewise worker`: a Celery worker for `cachewise run --engine celery`."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

import click

from ..errors import InputError
from .main import main


def _shown(url: str) -> str:
    """A URL as it may be printed: without its credentials."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


@main.command()
@click.option(
    "--broker",
    metavar="URL",
    required=True,
    help="The Celery broker the runs hand calls to (redis://... or amqp://...).",
)
@click.option(
    "--redis",
    "redis_url",
    metavar="URL",
    help="The Redis of the runs' state, the warm gate and the rate limits (default: the broker, "
    "when it is a Redis); the drivers' --redis.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Calls this worker makes at once (threads).",
)
@click.option(
    "--queue",
    default="cachewise",
    show_default=True,
    help="The broker queue to consume (the drivers' --queue).",
)
@click.option(
    "--ledger",
    "ledger_target",
    metavar="PATH|URL",
    help="Also record each call here (the driver records every call in its own --ledger; give "
    "both the same postgresql:// URL for one ledger).",
)
def worker(
    broker: str, redis_url: str | None, concurrency: int, queue: str, ledger_target: str | None
) -> None:
    """Make the calls of `cachewise run --engine celery`, on this machine, with this machine's
    ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL). Stop it with Ctrl-C or SIGTERM: the calls in
    flight finish first; a worker killed outright loses nothing (its calls are handed out
    again)."""
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise InputError(
            "no ANTHROPIC_API_KEY: the workers make the calls, with the key of their machine "
            "(and ANTHROPIC_BASE_URL for a proxy or `cachewise emulate`)",
            field="ANTHROPIC_API_KEY",
        )
    if not broker.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
        raise InputError(f"{broker!r} is not a redis:// or amqp:// URL", field="broker")
    state = redis_url or broker
    if not state.startswith(("redis://", "rediss://", "unix://")):
        raise InputError(
            "a broker that is not Redis needs --redis URL too: the runs' state, the warm gate "
            "and the rate limits live in Redis",
            field="redis",
        )
    try:
        import redis

        from ..fleet import TIMEOUTS
        from ..worker import start_worker
    except ImportError as exc:
        raise InputError(
            f"cachewise worker needs Celery ({exc}): pip install 'cachewise[distributed]'",
            field="broker",
        ) from exc
    try:
        redis.Redis.from_url(state, **TIMEOUTS).ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        raise InputError(f"no Redis answers at {_shown(state)} ({exc})", field="redis") from exc
    click.echo(
        f"cachewise worker: {concurrency} at once from queue {queue!r} of {_shown(broker)}; "
        f"runs' state in {_shown(state)}. Ctrl-C stops it once the calls in flight finish.",
        err=True,
    )
    status = start_worker(
        broker, redis_url=state, concurrency=concurrency, queue=queue, ledger=ledger_target
    )
    if status:
        sys.exit(status)
