"""Structured logging set-up for controllers (structlog).

Contract
--------
:func:`configure_logging` configures structlog once for the process:

* ``format="json"`` -- one JSON object per line (orjson), for log pipelines; ``"console"`` --
  coloured key=value lines for people (colours only when the stream is a TTY).
* Every line carries ``timestamp`` (UTC, ISO 8601), ``level``, ``event`` and the contextvars
  bound by the runtime: inside a reconcile that is ``controller``, ``namespace``, ``name``,
  ``reconcile_id`` and ``trigger`` (why the key was queued).
* Secrets are never written: :func:`redact_secrets` runs last before rendering and replaces the
  values under ``data``, ``stringData`` and ``binaryData`` and under token-like keys (``token``,
  ``password``, ``authorization``, ``*_key``, ``client-key-data``, ...) at any depth, plus
  ``Bearer ...`` strings, with ``"[REDACTED]"``. The objects passed to the logger are never
  mutated; redaction copies.
* Records from the standard library's :mod:`logging` (kubernetes-asyncio, aiohttp) go through the
  same processors and renderer when ``capture_stdlib=True`` (the default).

Not guaranteed: redaction by key name cannot recognise a secret stored under an innocent key
(``spec.foo: hunter2``) or embedded in free text; do not log whole objects you do not control.
"""

from __future__ import annotations

import logging as _stdlib_logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "configure_logging", "get_logger", "redact_secrets"]

REDACTED = "[REDACTED]"

_SECRET_CONTAINER_KEYS = frozenset({"data", "stringData", "binaryData"})
_TOKENISH = re.compile(
    r"(^|[_\-.])(token|tokens|password|passwd|passphrase|secret[_\-]?key|api[_\-]?key|"
    r"private[_\-]?key|client[_\-]?key(?:[_\-]data)?|authorization|bearer|credentials?|cookie)$",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_MAX_DEPTH = 12

_LEVELS = {
    "debug": _stdlib_logging.DEBUG,
    "info": _stdlib_logging.INFO,
    "warning": _stdlib_logging.WARNING,
    "warn": _stdlib_logging.WARNING,
    "error": _stdlib_logging.ERROR,
    "critical": _stdlib_logging.CRITICAL,
}


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (key in _SECRET_CONTAINER_KEYS or bool(_TOKENISH.search(key)))


def _redact_value(value: Any, depth: int) -> Any:
    """Return ``value`` with secrets replaced; containers are copied only when something changes."""
    if depth > _MAX_DEPTH:
        return value
    if isinstance(value, str):
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] | None = None
        for k, v in value.items():
            if _is_secret_key(k) and v is not None:
                new: Any = {kk: REDACTED for kk in v} if isinstance(v, Mapping) else REDACTED
            else:
                new = _redact_value(v, depth + 1)
            if new is not v and out is None:
                out = dict(value)
            if out is not None:
                out[k] = new
        return value if out is None else out
    if isinstance(value, list | tuple):
        items = [_redact_value(v, depth + 1) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items) if isinstance(value, tuple) else items
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace secret-looking values anywhere in the event (see module doc)."""
    for key in list(event_dict):
        value = event_dict[key]
        if key != "event" and _is_secret_key(key) and value is not None:
            event_dict[key] = {k: REDACTED for k in value} if isinstance(value, Mapping) else REDACTED
        else:
            event_dict[key] = _redact_value(value, 0)
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or repr).decode()


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    format: Literal["json", "console"] = "console",
    level: str | int = "info",
    *,
    stream: TextIO | None = None,
    capture_stdlib: bool = True,
) -> None:
    """Configure structlog (and, with ``capture_stdlib``, the root stdlib logger) for the process.

    ``level`` is a name (``"debug"``, ``"info"``, ...) or a :mod:`logging` number. ``stream``
    defaults to ``sys.stderr``. Calling it again replaces the previous configuration.
    """
    if format not in ("json", "console"):
        raise ValueError(f"log format must be 'json' or 'console', got {format!r}")
    if isinstance(level, str):
        try:
            numeric = _LEVELS[level.lower()]
        except KeyError:
            raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}") from None
    else:
        numeric = level
    out = stream if stream is not None else sys.stderr

    renderer: Processor
    if format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        tail: list[Processor] = [structlog.processors.format_exc_info, redact_secrets, renderer]
    else:
        colors = bool(getattr(out, "isatty", lambda: False)())
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        tail = [redact_secrets, renderer]

    structlog.configure(
        processors=[*_shared_processors(), *tail],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    if capture_stdlib:
        formatter = structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                *_shared_processors(),
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
        )
        handler = _stdlib_logging.StreamHandler(out)
        handler.setFormatter(formatter)
        handler.set_name("kctl_runtime")
        root = _stdlib_logging.getLogger()
        for existing in list(root.handlers):
            if existing.get_name() == "kctl_runtime":
                root.removeHandler(existing)
        root.addHandler(handler)
        root.setLevel(numeric)


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger (``name`` is bound as ``logger``), for code that wants one."""
    log = structlog.get_logger()
    if name is not None:
        initial = {"logger": name, **initial}
    return log.bind(**initial) if initial else log
