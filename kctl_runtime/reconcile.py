"""What a reconciler is handed and what it may answer.

Contract
--------
Reconciliation is *level-based*: a :class:`Request` carries only the namespace and name of the
object to bring to its desired state, never the event that caused it. The reconciler re-reads
whatever it needs (through the cache-reading :class:`~kctl_runtime.client.Client`) and acts on the
current state, so a missed, merged or repeated event can never make it wrong.

A reconciler answers in exactly one of four ways:

* ``return None`` -- done. The key's failure count is reset; it runs again only when something
  it watches changes (or on a resync).
* ``return RequeueAfter(seconds)`` -- done for now, look again after ``seconds`` (polling external
  state, TTLs). The failure count is reset.
* ``raise SomeError`` -- failed; retried with the controller's per-key exponential backoff
  (5 ms, 10 ms, 20 ms, ... up to 1000 s by default) plus an overall rate limit.
* ``raise TerminalError(...)`` -- failed in a way retrying cannot fix (invalid spec). Logged,
  counted in ``controller_runtime_terminal_reconcile_errors_total`` and **not** retried; the key
  runs again only on the next change.

There is deliberately no ``requeue: bool``: controller-runtime deprecated it because "requeue
now, with backoff, but it is not an error" confused everyone. Raise, or ask for a delay.

Not guaranteed: that a reconcile runs once per event (events for one key are merged while it is
queued), or that it runs at all for an object deleted before its turn (the reconciler then finds
it gone -- which is the point of re-reading).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "ReconcileFunc",
    "Reconciler",
    "Request",
    "RequeueAfter",
    "Result",
    "TerminalError",
    "as_reconciler",
]


@functools.total_ordering
@dataclass(frozen=True)
class Request:
    """The key of one object to reconcile: ``name`` and, for namespaced kinds, ``namespace``.

    ``str(request)`` is ``"namespace/name"`` (or ``"name"`` for cluster-scoped objects), the same
    key the cache uses. Requests sort by ``(namespace or "", name)`` so cluster-scoped and
    namespaced requests can be mixed in one sorted list.
    """

    name: str
    namespace: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Request.name must not be empty")
        if self.namespace == "":
            # "" and None both mean cluster-scoped; keep one spelling so equality is exact.
            object.__setattr__(self, "namespace", None)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Request:
        """The request for a Kubernetes object (a decoded dict with ``metadata.name``)."""
        meta = obj.get("metadata") or {}
        return cls(name=str(meta["name"]), namespace=meta.get("namespace") or None)

    def _sort_key(self) -> tuple[str, str]:
        return (self.namespace or "", self.name)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self._sort_key() < other._sort_key()

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class RequeueAfter:
    """Reconcile this key again after ``seconds`` (>= 0, finite) of the controller's clock.

    If the key is queued by an event before then, it runs then too; the delayed run still happens.
    """

    seconds: float

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int | float) or isinstance(self.seconds, bool):
            raise TypeError(f"RequeueAfter.seconds must be a number, not {type(self.seconds).__name__}")
        if not math.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"RequeueAfter.seconds must be finite and >= 0, got {self.seconds!r}")


Result: TypeAlias = RequeueAfter | None
"""What :meth:`Reconciler.reconcile` returns: ``None`` (done) or :class:`RequeueAfter`."""


class TerminalError(Exception):
    """A reconcile failure that retrying cannot fix; the controller logs it and does not retry.

    Wrap the cause: ``raise TerminalError("spec.replicas must be >= 0") from exc``.
    """


@runtime_checkable
class Reconciler(Protocol):
    """Brings the object named by a request to its desired state."""

    async def reconcile(self, request: Request) -> Result:
        """Reconcile ``request``; see the module docstring for what each outcome means."""
        ...


ReconcileFunc: TypeAlias = Callable[[Request], Awaitable[Result]]
"""A plain ``async def reconcile(request) -> Result`` function, accepted wherever a Reconciler is."""


class _FuncReconciler:
    __slots__ = ("_fn",)

    def __init__(self, fn: ReconcileFunc) -> None:
        self._fn = fn

    async def reconcile(self, request: Request) -> Result:
        return await self._fn(request)

    def __repr__(self) -> str:
        return f"as_reconciler({getattr(self._fn, '__qualname__', self._fn)!r})"


def as_reconciler(reconciler: Reconciler | ReconcileFunc) -> Reconciler:
    """Accept either a :class:`Reconciler` object or an async function and return a Reconciler."""
    if isinstance(reconciler, Reconciler):
        return reconciler
    if callable(reconciler):
        return _FuncReconciler(reconciler)
    raise TypeError(
        f"reconciler must have an async reconcile(request) method or be an async function, "
        f"got {type(reconciler).__name__}"
    )
