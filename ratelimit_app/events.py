"""Structured log lines: one per denial, ban, lift and counter-store failure transition.

Each line reads as a sentence followed by ``event=<name>`` and ``key=value`` fields whose
names are stable (alerting rules and log queries may rely on them). The same fields ride
on the log record (``record.ratelimit_event``, ``record.ratelimit_fields``), so that
``JsonFormatter`` writes them as JSON keys. Callers put no secret, key or address in a
field: parties appear as keyed hashes only (``ratelimit_app.hashing``).
"""

import datetime
import json
import logging
from typing import Any

# The events and their fields (docs: README, section Logging).
DENIED = "denied"
BAN_CREATED = "ban_created"
BAN_LIFTED = "ban_lifted"
STORE_FAILING = "store_failing"
STORE_BREAKER_OPEN = "store_breaker_open"
STORE_RECOVERED = "store_recovered"
FAILURE_COUNTING_STOPPED = "failure_counting_stopped"
FAILURE_COUNTING_RESUMED = "failure_counting_resumed"
COUNTERS_RESET = "counters_reset"


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    # A value with a space or an equals sign is quoted so that the line stays parseable.
    return json.dumps(text) if (" " in text or "=" in text or not text) else text


def log_event(logger: logging.Logger, level: int, event: str, sentence: str, **fields: Any) -> None:
    """Log ``sentence`` then ``event=...`` and the ``fields`` as ``key=value`` pairs, in one
    line; the fields also travel on the record for ``JsonFormatter``."""
    if not logger.isEnabledFor(level):
        return
    pairs = " ".join(f"{name}={_text(value)}" for name, value in fields.items())
    logger.log(
        level,
        "%s event=%s %s",
        sentence,
        event,
        pairs,
        extra={"ratelimit_event": event, "ratelimit_fields": fields},
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and for ratelimit_app's
    events the ``event`` and its fields as keys of their own.

    Use it in LOGGING: ``"formatters": {"json": {"()": "ratelimit_app.events.JsonFormatter"}}``.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "ratelimit_event", None)
        if event is not None:
            entry["event"] = event
            for name, value in getattr(record, "ratelimit_fields", {}).items():
                entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
