"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go's ``leaderelection`` contract).

Contract
--------
A :class:`LeaderElector` campaigns for one Lease. Candidates poll the Lease every ``retry_period``
(jittered). A candidate takes the Lease when it is unheld (``holderIdentity`` empty, as left by a
release) or when the Lease's record has not changed for ``leaseDurationSeconds`` as measured on the
candidate's **own monotonic clock** since it last saw the record change. The holder's timestamps
(``renewTime``) are written for humans and other tools but never compared with local time, so clock
skew between hosts does not matter; only clock *rate* does. Every write is an update carrying the
Lease's ``resourceVersion`` (optimistic concurrency): of two candidates racing for the same expired
Lease exactly one update succeeds; the other gets 409 Conflict and re-reads. ``leaseTransitions``
is incremented on every change of holder and ``acquireTime`` reset; ``renewTime`` is written from
``clock.now()`` as a MicroTime.

While leading, the elector renews every ``retry_period``. Each acquire/renew records the monotonic
time at which its attempt *started*; the elector stops leading as soon as ``renew_deadline`` has
passed since the start of its last successful attempt. Any other candidate saw that record change
only after that attempt started, so it cannot take over before ``lease_duration`` has passed since
that same instant; because ``renew_deadline < lease_duration``, the old leader has stopped believing
it leads before anybody else can start. Requests are bounded by the same deadline (a hung renew is
cancelled when the deadline passes). :attr:`LeaderElector.is_leader` re-checks the deadline on
every read, so it is truthful even when the event loop was starved.

When leadership ends, the work started for it (``on_started_leading`` or the callable given to
:meth:`LeaderElector.run_while_leading`, or the block of ``async with elector.leading()``) is
cancelled and awaited, then ``on_stopped_leading`` runs.
When :meth:`LeaderElector.run` ends while still leading (cancelled, or the work raised or returned)
and ``release_on_cancel`` is set, the Lease is released like client-go does (``holderIdentity``
emptied, ``leaseDurationSeconds`` 1) so a standby takes over at its next poll instead of waiting a
whole ``lease_duration``. A run that *lost* leadership returns without releasing; call ``run()``
again to campaign again (or, like controller-runtime, exit the process).

NOT guaranteed — there is no fencing:
* A leader that is paused (GC pause, a stopped VM, a blocked event loop) past its deadline, or whose
  work ignores cancellation, may still write to the API after another candidate has taken over. The
  elector only promises that *it* stops believing it leads, and cancels the work, before the Lease
  can expire for others. Write reconcilers level-based and idempotent, and make writes conditional
  (``resourceVersion`` preconditions, server-side apply) so a stale leader's writes fail or converge.
* The safety argument assumes all candidates' clocks run at about the same rate; it does not hold if
  a candidate's monotonic clock runs much slower than real time.
* Deleting or hand-editing a held Lease breaks the argument (a new Lease can be created at once).
* A released Lease is noticed by standbys at their next poll, not immediately.

Traffic: give the elector its own ``ApiClient`` (its own aiohttp connection pool), so Lease renewals
are never queued behind controller traffic in a shared pool. Metrics: ``leader_election_master_status
{name}`` (1 while leading, like client-go). Transitions are logged with structlog.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import re
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import anyio
import structlog
from prometheus_client import Gauge

from kctl_runtime._rest import request_json
from kctl_runtime.clock import Clock, SystemClock, format_micro_time, move_on_after
from kctl_runtime.errors import CALL_FAILURES, AlreadyExists, ApiError, Conflict, NotFound
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.resource import LEASES

_CALL_FAILURES_OR_BAD_LEASE: tuple[type[BaseException], ...] = (*CALL_FAILURES, ValueError)

__all__ = [
    "LeaderElectionConfig",
    "LeaderElector",
    "Leadership",
    "default_identity",
    "format_micro_time",
    "lease_record",
    "released_lease",
    "taken_lease",
]

T = TypeVar("T")

_log = structlog.get_logger("kctl_runtime.leaderelection")

LEADER_STATUS = Gauge(
    "leader_election_master_status",
    "1 while this process leads the named lease, 0 after it stopped leading.",
    ["name"],
    registry=REGISTRY,
)

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def default_identity() -> str:
    """``<hostname>_<uuid4>``, like controller-runtime: unique even for two processes on one host."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclasses.dataclass(frozen=True)
class LeaderElectionConfig:
    """Which Lease to campaign for, and the timing of the campaign. Validated at construction.

    Timing must satisfy ``lease_duration > renew_deadline > jitter_factor * retry_period > 0``
    (client-go's rule), otherwise :class:`ValueError` names the violated inequality.
    """

    lease_name: str
    """``metadata.name`` of the Lease (a DNS subdomain). Also the ``name`` label of the metric."""
    lease_namespace: str
    """Namespace of the Lease (usually the controller's own namespace)."""
    identity: str = dataclasses.field(default_factory=default_identity)
    """This candidate's ``holderIdentity``; must be unique among candidates. Default: hostname_uuid."""
    lease_duration: float = 15.0
    """Seconds a standby waits, after last seeing the record change, before taking over (15 s:
    client-go's default). Longer = slower failover after a crash; shorter = more sensitive to
    pauses. Written to the Lease rounded up to whole seconds."""
    renew_deadline: float = 10.0
    """Seconds the leader keeps trying to renew (measured from its last successful renew attempt)
    before it stops leading (10 s). Must be below ``lease_duration``: the gap is the safety margin
    that covers clock-rate differences and the time it takes to stop the work."""
    retry_period: float = 2.0
    """Seconds between attempts: standbys poll, and the leader renews, this often (2 s)."""
    jitter_factor: float = 1.2
    """Standbys sleep ``retry_period * (1 + random() * jitter_factor)`` between polls so candidates
    do not poll in lockstep (client-go's ``JitterFactor`` 1.2)."""
    release_on_cancel: bool = True
    """Release the Lease when ``run()`` ends while leading, so failover takes about one poll
    instead of ``lease_duration`` (True). Set False only if the work may outlive ``run()``."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    """Labels the elector puts on the Lease when it creates or writes it (none by default), so
    other tools can select Leases by purpose (:mod:`kctl_runtime.sharding` finds a ring's shard
    Leases this way)."""

    def __post_init__(self) -> None:
        if not self.lease_name or len(self.lease_name) > 253 or not _DNS_SUBDOMAIN.match(self.lease_name):
            raise ValueError(f"lease_name {self.lease_name!r} must be a DNS subdomain (e.g. 'my-controller')")
        if not self.lease_namespace:
            raise ValueError("lease_namespace is required (the namespace the Lease lives in)")
        if not self.identity:
            raise ValueError("identity must be a non-empty string unique to this candidate")
        for field_name in ("lease_duration", "renew_deadline", "retry_period", "jitter_factor"):
            value = getattr(self, field_name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{field_name} must be a positive number of seconds, not {value!r}")
        if not self.lease_duration > self.renew_deadline:
            raise ValueError(
                f"lease_duration ({self.lease_duration}) must be greater than renew_deadline "
                f"({self.renew_deadline}): a leader must stop leading before its lease can expire"
            )
        if not self.renew_deadline > self.jitter_factor * self.retry_period:
            raise ValueError(
                f"renew_deadline ({self.renew_deadline}) must be greater than jitter_factor * retry_period "
                f"({self.jitter_factor} * {self.retry_period} = {self.jitter_factor * self.retry_period}): "
                "the leader needs time for more than one renew attempt"
            )


@dataclasses.dataclass
class Leadership:
    """What ``async with elector.leading() as leadership`` yields."""

    lost: bool = False
    """True when the block was cancelled because leadership was lost (read it after the block)."""


_Record = tuple[str, Any, Any, Any, Any]


def lease_record(lease: Mapping[str, Any]) -> _Record:
    """What a Lease's holder writes on every renewal: ``(holderIdentity, renewTime, acquireTime,
    leaseTransitions, leaseDurationSeconds)``. An observer measures expiry from the moment *it* saw
    this tuple change, on its own monotonic clock (module doc), never from ``renewTime``."""
    spec = lease.get("spec") or {}
    return (
        spec.get("holderIdentity") or "",
        spec.get("renewTime"),
        spec.get("acquireTime"),
        spec.get("leaseTransitions"),
        spec.get("leaseDurationSeconds"),
    )


class _Lost(Exception):
    """Internal: the lease is observed held by someone else while we think we lead."""


class LeaderElector:
    """Campaigns for one Lease and runs work only while it leads. See the module docstring.

    ``api_client`` should be dedicated to the elector (its own connection pool). Callbacks:
    ``on_started_leading`` is started as a task when leadership begins and cancelled when it ends;
    ``on_stopped_leading`` is called after that work has stopped; ``on_new_leader`` is called with
    the holder's identity whenever an elector observes a new holder (including itself). ``rng``
    makes the jitter reproducible in tests.
    """

    def __init__(
        self,
        api_client: Any,
        config: LeaderElectionConfig,
        *,
        clock: Clock | None = None,
        on_started_leading: Callable[[], Awaitable[None]] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api_client
        self.config = config
        self._clock: Clock = clock or SystemClock()
        self._on_started_leading = on_started_leading
        self._on_stopped_leading = on_stopped_leading
        self._on_new_leader = on_new_leader
        self._rng = rng or random.Random()
        self._path = LEASES.path(config.lease_namespace, config.lease_name)
        self._collection = LEASES.path(config.lease_namespace)
        self._lease: dict[str, Any] | None = None
        self._observed: _Record | None = None
        self._observed_time = 0.0
        self._leading = False
        self._renewed_at: float | None = None
        self._inflight = 0
        self._changed = anyio.Event()
        self._running = False
        self._log = _log.bind(lease=f"{config.lease_namespace}/{config.lease_name}", identity=config.identity)

    # ----------------------------------------------------------------------------------- state

    @property
    def is_leader(self) -> bool:
        """Whether this elector leads now: it won the Lease and its renew deadline has not passed."""
        return (
            self._leading
            and self._renewed_at is not None
            and self._clock.monotonic() < self._renewed_at + self.config.renew_deadline
        )

    @property
    def observed_leader(self) -> str | None:
        """The holder identity in the last Lease record this elector saw (``None``: unheld/unknown)."""
        return (self._observed[0] or None) if self._observed is not None else None

    @property
    def observed_at(self) -> float | None:
        """Clock time at which this elector first saw the current Lease record (its expiry counts
        from here: wall times of two hosts are never compared)."""
        return self._observed_time if self._observed is not None else None

    @property
    def last_renewal(self) -> float | None:
        """Monotonic clock time at which the last successful acquire/renew attempt started."""
        return self._renewed_at

    @property
    def busy(self) -> bool:
        """Whether a request for the Lease is in flight (diagnostics and tests)."""
        return self._inflight > 0

    def healthy(self, max_tolerable_expired: float = 10.0) -> bool:
        """Health check (client-go's ``HealthzAdaptor``): ``False`` only when this elector believes it
        holds the Lease but its last successful renewal is older than ``lease_duration +
        max_tolerable_expired`` — a stuck leader that should be restarted."""
        if not self._leading or self._renewed_at is None:
            return True
        age = self._clock.monotonic() - self._renewed_at
        return age <= self.config.lease_duration + max_tolerable_expired

    async def wait_leading(self) -> None:
        """Return once this elector leads (at once if it already does)."""
        while not self.is_leader:
            await self._changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    # ------------------------------------------------------------------------------------ run

    async def run(self) -> None:
        """Campaign until leading, lead until leadership is lost or the caller cancels.

        ``on_started_leading`` (if given) runs while leading; its returning does not end
        leadership. Returns after leadership was lost; raises ``Cancelled`` when cancelled (after
        releasing the Lease when ``release_on_cancel``).
        """
        await self._campaign(self._on_started_leading, stop_when_done=False)

    async def run_while_leading(self, work: Callable[[], Awaitable[None]]) -> bool:
        """Campaign, then run ``work`` while leading; cancel it if leadership is lost.

        Returns ``True`` when ``work`` returned (the Lease is then released if
        ``release_on_cancel``) and ``False`` when leadership was lost first. An exception from
        ``work`` propagates (after the release).
        """
        return await self._campaign(work, stop_when_done=True)

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[Leadership]:
        """Campaign, then run the ``async with`` block while leading.

        The block starts once this elector leads. If leadership is lost, the block is cancelled, the
        ``async with`` statement ends without an exception and ``leadership.lost`` is True. When the
        block ends by itself (or raises), leadership ends and the Lease is released
        (``release_on_cancel``); an exception from the block propagates.
        """
        leadership = Leadership()
        body_done = anyio.Event()
        body_started = False
        try:
            async with anyio.create_task_group() as tg:

                async def campaign() -> None:
                    while True:
                        if await self.run_while_leading(body_done.wait):
                            return
                        if body_started:
                            leadership.lost = True
                            tg.cancel_scope.cancel()
                            return
                        # Lost before the block could start: campaign again.

                tg.start_soon(campaign)
                await self.wait_leading()
                body_started = True
                try:
                    yield leadership
                finally:
                    body_done.set()
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _campaign(self, work: Callable[[], Awaitable[None]] | None, *, stop_when_done: bool) -> bool:
        if self._running:
            raise RuntimeError("this LeaderElector is already running; create one per campaign loop")
        self._running = True
        finished = False
        lost = False
        started = False
        try:
            await self._acquire()
            self._become_leader()
            started = True
            try:
                async with anyio.create_task_group() as tg:

                    async def run_work(fn: Callable[[], Awaitable[None]]) -> None:
                        nonlocal finished
                        await fn()
                        if stop_when_done:
                            finished = True
                            tg.cancel_scope.cancel()

                    if work is not None:
                        tg.start_soon(run_work, work)
                    await self._renew_loop()
                    lost = True
                    self._leading = False
                    tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            return finished
        finally:
            self._running = False
            held = self._leading
            self._leading = False
            if started:
                self._stopped_leading(lost)
            if held and not lost and self.config.release_on_cancel:
                with anyio.CancelScope(shield=True):
                    await self._release()

    def _become_leader(self) -> None:
        self._leading = True
        LEADER_STATUS.labels(name=self.config.lease_name).set(1)
        self._log.info("started leading")
        self._notify()

    def _stopped_leading(self, lost: bool) -> None:
        LEADER_STATUS.labels(name=self.config.lease_name).set(0)
        if lost:
            self._log.warning("leadership lost: the lease could not be renewed within renew_deadline")
        else:
            self._log.info("stopped leading")
        self._notify()
        if self._on_stopped_leading is not None:
            self._on_stopped_leading()

    async def _acquire(self) -> None:
        cfg = self.config
        self._log.info("campaigning for the lease")
        while True:
            start = self._clock.monotonic()
            if await self._attempt(start + cfg.renew_deadline):
                return
            delay = cfg.retry_period * (1.0 + self._rng.random() * cfg.jitter_factor)
            expiry = self._held_by_other_until()
            if expiry is not None:
                # Wake up close to the moment the holder's lease runs out instead of up to a whole
                # jittered period after it; the extra random part (at most half a retry period,
                # leaving the other half for the GET and PUT) keeps standbys apart, so a takeover
                # lands within lease_duration + retry_period of the renewal we observed.
                until = expiry - self._clock.monotonic()
                if until > 0:
                    delay = min(delay, until + self._rng.random() * cfg.retry_period / 2)
            await self._clock.sleep(delay)

    async def _renew_loop(self) -> None:
        """Keep renewing; return when the renew deadline passed without a successful renewal."""
        cfg = self.config
        while True:
            assert self._renewed_at is not None
            deadline = self._renewed_at + cfg.renew_deadline
            await self._clock.sleep(min(cfg.retry_period, deadline - self._clock.monotonic()))
            while True:
                deadline = self._renewed_at + cfg.renew_deadline
                if self._clock.monotonic() >= deadline:
                    return
                try:
                    if await self._attempt(deadline):
                        break
                except _Lost:
                    return
                remaining = deadline - self._clock.monotonic()
                if remaining <= 0:
                    return
                await self._clock.sleep(min(cfg.retry_period, remaining))

    def _held_by_other_until(self) -> float | None:
        if self._observed is None or not self._observed[0] or self._observed[0] == self.config.identity:
            return None
        return self._observed_time + self._record_duration(self._observed)

    def _record_duration(self, record: _Record) -> float:
        seconds = record[4]
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0:
            return float(seconds)
        return self.config.lease_duration

    # ------------------------------------------------------------------------------- attempts

    async def _attempt(self, deadline: float) -> bool:
        """One acquire-or-renew, cancelled at ``deadline``; ``False`` on any API/transport failure."""
        self._inflight += 1
        try:
            outcome: list[bool] = []
            errors: list[BaseException] = []
            async with move_on_after(self._clock, deadline - self._clock.monotonic()):
                try:
                    outcome.append(await self._try_acquire_or_renew(deadline))
                except _CALL_FAILURES_OR_BAD_LEASE as exc:
                    errors.append(exc)
                except _Lost as exc:
                    errors.append(exc)
        finally:
            self._inflight -= 1
        if errors:
            if isinstance(errors[0], _Lost):
                raise errors[0]
            if isinstance(errors[0], ApiError) and errors[0].status in (401, 403):
                # revoked or missing credentials/RBAC: retrying will not help, say so loudly
                self._log.error("lease attempt refused", error=str(errors[0]), leading=self._leading)
            else:
                self._log.debug("lease attempt failed", error=repr(errors[0]), leading=self._leading)
            return False
        if not outcome:
            self._log.debug("lease attempt timed out", leading=self._leading)
            return False
        return outcome[0]

    def _timeout(self, deadline: float) -> float:
        return max(0.001, deadline - self._clock.monotonic())

    async def _try_acquire_or_renew(self, deadline: float) -> bool:
        cfg = self.config
        started = self._clock.monotonic()
        now = format_micro_time(self._clock.now())
        if self._leading and self._lease is not None and lease_record(self._lease)[0] == cfg.identity:
            # Fast path: we wrote the lease last; update our cached copy directly.
            try:
                updated = await self._put(self._next(self._lease, now), deadline)
            except (Conflict, NotFound):
                pass  # someone else wrote it, or it was deleted: re-read below
            else:
                self._succeeded(updated, started)
                return True
        try:
            lease: dict[str, Any] = await request_json(
                self._api, "GET", self._path, timeout=self._timeout(deadline)
            )
        except NotFound:
            if self._leading:
                # The lease we held was deleted; anyone may create it now. Stop at once.
                raise _Lost() from None
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {
                    "name": cfg.lease_name,
                    "namespace": cfg.lease_namespace,
                    **({"labels": dict(cfg.labels)} if cfg.labels else {}),
                },
                "spec": self._spec(now, now, 0),
            }
            try:
                created = await request_json(
                    self._api, "POST", self._collection, body=body, timeout=self._timeout(deadline)
                )
            except (AlreadyExists, Conflict):
                return False
            self._succeeded(created, started)
            return True
        self._observe(lease)
        holder = lease_record(lease)[0]
        if holder and holder != cfg.identity:
            if self._leading:
                raise _Lost()
            if self._observed_time + self._record_duration(lease_record(lease)) > self._clock.monotonic():
                return False
        try:
            updated = await self._put(self._next(lease, now), deadline)
        except Conflict:
            return False
        self._succeeded(updated, started)
        return True

    def _spec(self, acquire_time: str, renew_time: str, transitions: int) -> dict[str, Any]:
        return _holder_spec(
            self.config.identity, self.config.lease_duration, acquire_time, renew_time, transitions
        )

    def _next(self, lease: dict[str, Any], now: str) -> dict[str, Any]:
        cfg = self.config
        return taken_lease(lease, cfg.identity, cfg.lease_duration, now, labels=cfg.labels)

    async def _put(self, lease: dict[str, Any], deadline: float) -> dict[str, Any]:
        result: dict[str, Any] = await request_json(
            self._api, "PUT", self._path, body=lease, timeout=self._timeout(deadline)
        )
        return result

    def _observe(self, lease: dict[str, Any]) -> None:
        self._lease = lease
        record = lease_record(lease)
        if record != self._observed:
            previous = self._observed[0] if self._observed is not None else None
            self._observed = record
            self._observed_time = self._clock.monotonic()
            if record[0] and record[0] != previous:
                self._log.info("observed a new leader", leader=record[0])
                if self._on_new_leader is not None:
                    self._on_new_leader(record[0])

    def _succeeded(self, lease: dict[str, Any], started: float) -> None:
        self._observe(lease)
        self._renewed_at = started

    async def _release(self) -> None:
        """Give the Lease up (holder emptied, duration 1 s) if our last write still holds it."""
        lease = self._lease
        if lease is None or lease_record(lease)[0] != self.config.identity:
            return
        released = released_lease(lease, format_micro_time(self._clock.now()))
        deadline = self._clock.monotonic() + self.config.renew_deadline
        self._inflight += 1
        try:
            async with move_on_after(self._clock, self.config.renew_deadline) as timeout:
                released = await self._put(released, deadline)
                self._observe(released)
                self._log.info("released the lease")
            if timeout.expired:
                self._log.warning(
                    "could not release the lease: no answer within renew_deadline; a standby takes "
                    "over once it expires",
                    timeout=self.config.renew_deadline,
                )
        except CALL_FAILURES as exc:
            # A conflict means someone else wrote the lease since: it is not ours to release.
            self._log.warning("could not release the lease", error=repr(exc))
        finally:
            self._inflight -= 1


# --------------------------------------------------------------------------- lease bodies (shared)


def _holder_spec(
    identity: str, duration: float, acquire_time: str, renew_time: str, transitions: int
) -> dict[str, Any]:
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": math.ceil(duration),
        "acquireTime": acquire_time,
        "renewTime": renew_time,
        "leaseTransitions": transitions,
    }


def taken_lease(
    lease: Mapping[str, Any],
    identity: str,
    duration: float,
    now: str,
    *,
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The body that makes ``identity`` hold ``lease`` (a renewal when it already does): holder,
    duration (rounded up to whole seconds) and ``renewTime`` written; on a change of holder
    ``acquireTime`` is reset and ``leaseTransitions`` incremented. ``labels`` are merged into the
    Lease's labels. PUT it with the ``resourceVersion`` it carries (the optimistic-concurrency
    precondition every lease write relies on). ``now`` is a MicroTime (:func:`format_micro_time`)."""
    spec = dict(lease.get("spec") or {})
    transitions = int(spec.get("leaseTransitions") or 0)
    if spec.get("holderIdentity") == identity:
        spec.update(_holder_spec(identity, duration, spec.get("acquireTime") or now, now, transitions))
    else:
        spec.update(_holder_spec(identity, duration, now, now, transitions + 1))
    body = {**lease, "spec": spec}
    if labels:
        meta = dict(lease.get("metadata") or {})
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
        body["metadata"] = meta
    return body


def released_lease(lease: Mapping[str, Any], now: str) -> dict[str, Any]:
    """The body that gives ``lease`` up: holder emptied and duration 1 s, so the next candidate takes
    it at its next poll (client-go's release)."""
    spec = dict(lease.get("spec") or {})
    spec.update({"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": now, "acquireTime": now})
    return {**lease, "spec": spec}
