"""Sharding: one controller spread over N replicas, each reconciling its own share of the objects.

The design is lease-based sharding with label assignment (the published
"kubernetes-controller-sharding" design): the API server is the only coordination point.

Pieces
------
* **Ring** -- a :class:`ShardingConfig` names a *ring*: one primary resource (and the resources
  it owns) split between shards. Objects carry the label ``shard.kctl.dev/<ring>`` = shard id.
* **Membership** -- every replica runs a :class:`Shard`, which holds its own Lease
  ``<ring>-shard-<id>`` through :class:`~kctl_runtime.leaderelection.LeaderElector` (labels
  ``shard.kctl.dev/ring`` and ``shard.kctl.dev/shard`` identify it). A shard is *alive* while its
  Lease is held by a shard process and, as measured by the observer's own monotonic clock since it
  last saw the Lease's record change, not expired (no wall times are compared).
* **Assignment** -- one :class:`Sharder` per ring, leader-elected among the replicas (Lease
  ``<ring>-sharder``), watches the shard Leases and the objects (metadata only) and labels each
  object with the shard a :class:`HashRing` (consistent hashing with virtual nodes) gives for its
  ``namespace/name`` over the alive shards; so a membership change moves about 1/N of the
  objects. Objects controlled (``ownerReference`` with ``controller: true``) by a primary object
  get their owner's label: children follow their owner.
* **Selection** -- :meth:`Shard.add` narrows a :class:`~kctl_runtime.controller.Controller`'s
  ``for_`` and ``owns`` informers to ``shard.kctl.dev/<ring>=<id>``, so a replica caches only its
  share (memory per replica falls with N). Watches (``Watch``) stay unsharded.
* **Drain** -- to move an object from a live shard A to another shard, the sharder adds the label
  ``drain.shard.kctl.dev/<ring>``. A's controller sees it as an event for that key; since its work
  queue never hands out a key that is being reconciled, the drain is handled after any in-flight
  reconcile of the object has finished: A then removes both labels with a JSON patch whose ``test``
  operations make it conditional on the labels still naming A, and does not call the reconciler.
  Only then does the sharder assign the (now unlabelled) object to its new shard.
* **Dead shards** -- a shard whose Lease expired or was released is *claimed* first: the sharder
  takes the Lease (an update with the observed ``resourceVersion``, holder ``<sharder identity>``
  marked as a claim) and only then relabels that shard's objects directly, without a drain. Moves
  are issued only while the claim is within its renew deadline (the elector's own rule); when the
  shard has no objects left and every move was answered, the claim is released, so a restarted
  shard with that id can take its Lease again -- and its informers, started only once it holds its
  Lease, list after every move was committed.

Guarantee: **an object is never reconciled by two shards at once**, under the same assumptions as
leader election. A shard's controllers run only while it holds its Lease (they are cancelled when
the renew deadline passes, before anyone can consider the Lease expired); a shard reconciles a key
only if its own cache shows the object labelled with its id and without the drain label; an
object leaves a live shard only through that shard's acknowledgement, and a dead one only under a
claim that keeps it from coming back until the moves are committed; and caches only move forward.

NOT guaranteed (the limits):

* No fencing, as for :mod:`kctl_runtime.leaderelection`: a shard process paused past its renew
  deadline (a stopped VM) may still complete a write it started before the pause. Write reconcilers
  idempotent, with ``resourceVersion`` preconditions or server-side apply.
* Not all objects are reconciled all the time: an object is unowned between a drain
  acknowledgement and the sharder's next pass (typically well under a second), and a dead shard's
  objects wait for its Lease to expire (``lease_duration`` after its last renewal the sharder saw)
  plus one sharder pass.
* After a sharder failover the new sharder measures Lease expiry from when *it* first saw each
  record, so a shard that died just before can take up to one more ``lease_duration`` to be moved.
* A sharded reconciler is never called for an object its shard's cache does not hold (deleted, or
  moved away): clean up on deletion with finalizers, as always.
* Assignment follows membership, not load: objects of very different cost still split by count.

Metrics (label ``ring``): ``kctl_shard_objects{shard}`` (objects in the shard's cache, on each
replica), ``kctl_shard_lease_held{shard}``, ``kctl_shard_drains_total{shard}`` (drains
acknowledged), and on the leading sharder ``kctl_sharder_assigned_objects{shard}``,
``kctl_sharder_alive_shards``, ``kctl_sharder_moves_total{how}`` (``assign``, ``drain``,
``undrain``, ``direct``, ``child``).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import structlog
from prometheus_client import Counter, Gauge

from kctl_runtime._rest import request_json
from kctl_runtime.clock import Clock, SystemClock, format_micro_time, move_on_after
from kctl_runtime.config import FatalError
from kctl_runtime.controller import Controller, Owns
from kctl_runtime.errors import CALL_FAILURES, AlreadyExists, ApiError, Conflict, Invalid, NotFound
from kctl_runtime.informer import Informer, InformerFactory, ResourceEventHandlerFuncs
from kctl_runtime.leaderelection import (
    LeaderElectionConfig,
    LeaderElector,
    default_identity,
    lease_record,
    released_lease,
    taken_lease,
)
from kctl_runtime.metrics import REGISTRY
from kctl_runtime.ownership import controller_name
from kctl_runtime.predicates import and_, from_functions, or_
from kctl_runtime.reconcile import Reconciler, Request, Result
from kctl_runtime.resource import LEASES, Resource

if TYPE_CHECKING:
    from kctl_runtime.client import Cache
    from kctl_runtime.manager import Manager

__all__ = [
    "RING_LABEL",
    "SHARD_ID_LABEL",
    "HashRing",
    "Shard",
    "ShardLeaseLost",
    "Sharder",
    "ShardingConfig",
    "drain_label",
    "shard_label",
    "shard_lease_name",
]

_log = structlog.get_logger("kctl_runtime.sharding")

RING_LABEL = "shard.kctl.dev/ring"
"""Label on a shard Lease (and the sharder's Lease) naming its ring."""
SHARD_ID_LABEL = "shard.kctl.dev/shard"
"""Label on a shard Lease naming the shard id."""
CLAIM_PREFIX = "sharder-claim:"
"""``holderIdentity`` prefix of a Lease the sharder claimed from a dead shard."""

_LABEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

SHARD_OBJECTS = Gauge(
    "kctl_shard_objects",
    "Objects of the ring's primary resource in this shard's cache.",
    ["ring", "shard"],
    registry=REGISTRY,
)
SHARD_LEASE_HELD = Gauge(
    "kctl_shard_lease_held",
    "1 while this process holds the shard's Lease.",
    ["ring", "shard"],
    registry=REGISTRY,
)
SHARD_DRAINS = Counter(
    "kctl_shard_drains_total",
    "Drains this shard acknowledged (objects handed back).",
    ["ring", "shard"],
    registry=REGISTRY,
)
SHARDER_ASSIGNED = Gauge(
    "kctl_sharder_assigned_objects",
    "Primary objects labelled with each shard, as the leading sharder last saw them.",
    ["ring", "shard"],
    registry=REGISTRY,
)
SHARDER_ALIVE = Gauge(
    "kctl_sharder_alive_shards", "Shards the leading sharder considers alive.", ["ring"], registry=REGISTRY
)
SHARDER_MOVES = Counter(
    "kctl_sharder_moves_total",
    "Label writes of the sharder: assign (unlabelled), drain (asked a live shard to let go), undrain "
    "(a drain no longer needed), direct (moved off a dead shard), child (a child followed its owner).",
    ["ring", "how"],
    registry=REGISTRY,
)


def shard_label(ring: str) -> str:
    """The label naming an object's shard in ``ring``: ``shard.kctl.dev/<ring>``."""
    return f"shard.kctl.dev/{ring}"


def drain_label(ring: str) -> str:
    """The label asking a shard to let go of an object: ``drain.shard.kctl.dev/<ring>``."""
    return f"drain.shard.kctl.dev/{ring}"


def shard_lease_name(ring: str, shard_id: str) -> str:
    """The Lease a shard holds: ``<ring>-shard-<id>``."""
    return f"{ring}-shard-{shard_id}"


def _json_pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


# ------------------------------------------------------------------------------------------------ ring


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode(), usedforsecurity=False).digest()[:8], "big")


class HashRing:
    """Consistent hashing with virtual nodes: ``get(key)`` names the node owning ``key``.

    Each node is placed on a 64-bit ring at ``virtual_nodes`` points (SHA-1 of ``"<node>#<i>"``); a
    key belongs to the first point at or after its own hash. Adding a node to N moves about
    1/(N+1) of the keys (only to the new node); removing one moves only that node's keys. The
    result depends only on the set of nodes, not on the order they were added, so every process
    computes the same assignment. With the default 1000 virtual nodes per node the largest share
    stays within about 1.3x of the smallest (with 100, unlucky node names reach 1.7x).
    """

    def __init__(self, nodes: Iterable[str] = (), *, virtual_nodes: int = 1000) -> None:
        if virtual_nodes < 1:
            raise ValueError(f"virtual_nodes must be >= 1, got {virtual_nodes}")
        self.virtual_nodes = virtual_nodes
        self._nodes: set[str] = set()
        self._points: list[int] = []
        self._owners: list[str] = []
        self._nodes.update(nodes)
        self._rebuild()

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes on the ring."""
        return frozenset(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def add(self, node: str) -> None:
        """Put ``node`` on the ring (no-op if it is there)."""
        if node not in self._nodes:
            self._nodes.add(node)
            self._rebuild()

    def remove(self, node: str) -> None:
        """Take ``node`` off the ring (no-op if absent)."""
        if node in self._nodes:
            self._nodes.discard(node)
            self._rebuild()

    def _rebuild(self) -> None:
        points = sorted(
            (_hash(f"{node}#{index}"), node) for node in self._nodes for index in range(self.virtual_nodes)
        )
        self._points = [point for point, _ in points]
        self._owners = [node for _, node in points]

    def get(self, key: str) -> str | None:
        """The node owning ``key`` (``None`` on an empty ring)."""
        if not self._points:
            return None
        at = bisect.bisect_left(self._points, _hash(key))
        return self._owners[at % len(self._owners)]


# ---------------------------------------------------------------------------------------------- config


@dataclasses.dataclass(frozen=True)
class ShardingConfig:
    """One ring: which objects are split, where the Leases live, and the Lease timing.

    The timing fields have :class:`~kctl_runtime.leaderelection.LeaderElectionConfig`'s meaning and
    rule (``lease_duration > renew_deadline > 1.2 * retry_period``) and apply to the shard Leases,
    the sharder's Lease and the sharder's claims alike.
    """

    ring: str
    """The ring's name (a DNS label, at most 40 characters): part of labels and Lease names."""
    resource: Resource
    """The primary resource the controllers are ``for_``."""
    lease_namespace: str
    """Namespace of the shard Leases and the sharder's Lease (usually the controller's own)."""
    owns: Sequence[Resource] = ()
    """Resources whose objects are controlled by a primary object and follow its shard. A sharded
    controller may own only these (its owned informers select by the shard label)."""
    namespace: str | None = None
    """Shard only primary objects (and children) in this namespace (``None``: all namespaces)."""
    lease_duration: float = 15.0
    """Seconds after a shard's last renewal (as observed) before its objects move elsewhere (15)."""
    renew_deadline: float = 10.0
    """Seconds a shard keeps trying to renew before it stops its controllers (10)."""
    retry_period: float = 2.0
    """Seconds between renewals, and between the sharder's checks for expired Leases (2)."""
    virtual_nodes: int = 1000
    """Points per shard on the hash ring (1000): more points, more even shares, slower ring builds
    (10 shards: 10,000 SHA-1 hashes, about 10 ms, once per membership change)."""

    def __post_init__(self) -> None:
        if not _LABEL_NAME.match(self.ring) or len(self.ring) > 40:
            raise ValueError(
                f"ring {self.ring!r} must be a DNS label of at most 40 characters (it is part of label "
                "keys and Lease names)"
            )
        # the same timing rule as leader election, with a clear message
        LeaderElectionConfig(
            lease_name=f"{self.ring}-sharder",
            lease_namespace=self.lease_namespace,
            lease_duration=self.lease_duration,
            renew_deadline=self.renew_deadline,
            retry_period=self.retry_period,
        )
        if self.virtual_nodes < 1:
            raise ValueError(f"virtual_nodes must be >= 1, got {self.virtual_nodes}")

    @property
    def shard_label(self) -> str:
        """``shard.kctl.dev/<ring>``."""
        return shard_label(self.ring)

    @property
    def drain_label(self) -> str:
        """``drain.shard.kctl.dev/<ring>``."""
        return drain_label(self.ring)

    def _scope(self, resource: Resource) -> str | None:
        return self.namespace if resource.namespaced else None


class ShardLeaseLost(RuntimeError, FatalError):
    """This replica's shard Lease was not renewed in time; its controllers were stopped. Restart
    the process: a fresh one lists its share again once it holds the Lease."""


# ----------------------------------------------------------------------------------------------- shard


class _ShardGate:
    """The reconciler a sharded controller runs: drops keys that are not this shard's, acknowledges
    drains, and calls the user's reconciler for the rest."""

    def __init__(self, inner: Reconciler, shard: Shard) -> None:
        self.inner = inner
        self._shard = shard
        self.informer: Informer | None = None

    async def reconcile(self, request: Request) -> Result:
        informer = self.informer
        if informer is None:  # pragma: no cover - the shard sets it before its controllers run
            raise RuntimeError("sharded controller run outside Shard.run()")
        obj = informer.store.get_object(request.namespace, request.name)
        if obj is None:
            return None  # deleted, or moved away: not ours
        labels = _labels(obj)
        config = self._shard.config
        if labels.get(config.shard_label) != self._shard.shard_id:
            return None
        drain = labels.get(config.drain_label)
        if drain is not None:
            await self._shard._acknowledge(informer.resource, request, drain)
            return None
        return await self.inner.reconcile(request)


def _drain_requested(label: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], bool]:
    def update(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
        return label in _labels(new) and label not in _labels(old)

    return update


def _never(_obj: Mapping[str, Any]) -> bool:
    return False


def _size_of(informer: Informer) -> Callable[[], float]:
    store = informer.store
    return lambda: float(len(store))


def _join(*selectors: str | None) -> str:
    return ",".join(s for s in selectors if s)


class Shard:
    """One replica's membership in a ring, and the controllers it runs on its share.

    ``shard_id`` must be unique among the replicas (a pod name; a DNS label of at most 63
    characters). ``identity`` is the Lease holder identity (default ``<id>_<uuid4>``: a restarted
    process waits for the old holder's Lease to expire or be released). ``api_client`` is used for
    the Lease and drain acknowledgements; give it its own connection pool like the elector's.

    Usage: ``shard.add(controller)`` for each controller of the ring, then ``shard.attach(manager)``
    (or run :meth:`run` with a running :class:`~kctl_runtime.informer.InformerFactory`). Do not
    also ``manager.add`` the controller: it runs only while this shard holds its Lease.
    """

    def __init__(
        self,
        api_client: Any,
        config: ShardingConfig,
        shard_id: str,
        *,
        identity: str | None = None,
        clock: Clock | None = None,
        graceful_shutdown_timeout: float = 30.0,
    ) -> None:
        if not _LABEL_NAME.match(shard_id) or len(shard_id) > 63:
            raise ValueError(f"shard id {shard_id!r} must be a DNS label (lower-case, digits, '-'; <= 63)")
        self._api = api_client
        self.config = config
        self.shard_id = shard_id
        self.identity = identity or f"{shard_id}_{uuid.uuid4()}"
        if self.identity.startswith(CLAIM_PREFIX):
            raise ValueError(f"identity must not start with {CLAIM_PREFIX!r}")
        self._clock: Clock = clock or SystemClock()
        self.graceful_shutdown_timeout = graceful_shutdown_timeout
        self._controllers: list[tuple[Controller, _ShardGate]] = []
        self.elector: LeaderElector | None = None
        self._m_held = SHARD_LEASE_HELD.labels(config.ring, shard_id)
        self._m_drains = SHARD_DRAINS.labels(config.ring, shard_id)
        self._log = _log.bind(ring=config.ring, shard=shard_id)

    @property
    def selector(self) -> str:
        """The label selector of this shard's objects: ``shard.kctl.dev/<ring>=<id>``."""
        return f"{self.config.shard_label}={self.shard_id}"

    @property
    def lease_name(self) -> str:
        return shard_lease_name(self.config.ring, self.shard_id)

    def add(self, controller: Controller) -> None:
        """Make ``controller`` a controller of this shard (before it runs).

        Its ``for_`` and ``owns`` informers then select ``shard.kctl.dev/<ring>=<id>`` (in addition
        to any selector they had), the drain label's appearance enqueues the object whatever the
        controller's predicates say, and its reconciler is wrapped as the module doc describes.
        """
        config = self.config
        if controller.running or any(c is controller for c, _ in self._controllers):
            raise RuntimeError(f"controller {controller.name} is running or already added to this shard")
        if controller.for_ != config.resource:
            raise ValueError(
                f"controller {controller.name} is for {controller.for_.kind}, ring {config.ring} shards "
                f"{config.resource.kind}"
            )
        unsharded = [o.resource.kind for o in controller.owns if o.resource not in config.owns]
        if unsharded:
            raise ValueError(
                f"controller {controller.name} owns {', '.join(unsharded)} that ring {config.ring} does "
                "not list in ShardingConfig.owns (their objects would never carry the shard label)"
            )
        if controller.namespace is None:
            controller.namespace = config.namespace
        elif config.namespace is not None and controller.namespace != config.namespace:
            raise ValueError(
                f"controller {controller.name} watches namespace {controller.namespace!r}, ring "
                f"{config.ring} shards namespace {config.namespace!r}"
            )
        controller.label_selector = _join(controller.label_selector, self.selector)
        controller.owns = tuple(
            Owns(o.resource, o.predicates, label_selector=_join(o.label_selector, self.selector))
            for o in controller.owns
        )
        if controller.predicates:
            # only a drain label's appearance bypasses the predicates; they decide everything else
            drain = from_functions(
                create=_never, update=_drain_requested(config.drain_label), delete=_never, generic=_never
            )
            controller.predicates = (or_(drain, and_(*controller.predicates)),)
        gate = _ShardGate(controller.reconciler, self)
        controller.reconciler = gate
        self._controllers.append((controller, gate))

    def attach(self, manager: Manager) -> None:
        """Run this shard with ``manager`` on every replica (not gated by the manager's leader
        election): reads of the shard's objects through ``manager.client`` are served from the
        shard's caches once it holds its Lease."""
        manager.add_runnable(
            lambda: self.run(manager.informers, manager.cache),
            needs_leader=False,
            name=f"shard {self.config.ring}/{self.shard_id}",
        )

    async def run(self, informers: InformerFactory, cache: Cache | None = None) -> None:
        """Hold the shard Lease and run the controllers while holding it (once per Shard: its
        controllers run once).

        ``informers`` must be running. Raises :class:`ShardLeaseLost` when the Lease is lost (the
        controllers were cancelled before it could expire for anyone else). When cancelled, the
        controllers stop gracefully -- in-flight reconciles finish, for at most
        ``graceful_shutdown_timeout`` and never past the Lease's renew deadline -- and the Lease
        is released so the sharder moves the objects at once.
        """
        config = self.config
        elector = LeaderElector(
            self._api,
            LeaderElectionConfig(
                lease_name=self.lease_name,
                lease_namespace=config.lease_namespace,
                identity=self.identity,
                lease_duration=config.lease_duration,
                renew_deadline=config.renew_deadline,
                retry_period=config.retry_period,
                labels={RING_LABEL: config.ring, SHARD_ID_LABEL: self.shard_id},
            ),
            clock=self._clock,
        )
        self.elector = elector
        try:
            finished = await elector.run_while_leading(lambda: self._work(informers, cache, elector))
        finally:
            self._m_held.set(0)
        if not finished:
            raise ShardLeaseLost(
                f"shard {config.ring}/{self.shard_id} lost its Lease {config.lease_namespace}/"
                f"{self.lease_name}: it was not renewed within renew_deadline"
            )

    def _prepare(self, informers: InformerFactory, cache: Cache | None) -> None:
        """Informers are requested only now that the Lease is held: their first list comes after
        every move the sharder made while this shard was dead (module doc)."""
        for controller, gate in self._controllers:
            for index, (resource, namespace, selector) in enumerate(controller.sources()):
                informer = informers.informer(resource, namespace=namespace, label_selector=selector)
                if index == 0:
                    gate.informer = informer
                    SHARD_OBJECTS.labels(self.config.ring, self.shard_id).set_function(_size_of(informer))
                if cache is not None and (index == 0 or index <= len(controller.owns)):
                    cache.register(resource, informer, namespace)

    async def _work(self, informers: InformerFactory, cache: Cache | None, elector: LeaderElector) -> None:
        self._m_held.set(1)
        self._log.info(
            "holding the shard lease; starting controllers",
            controllers=[c.name for c, _ in self._controllers],
        )
        self._prepare(informers, cache)
        done = anyio.Event()
        # Shielded so that a stop (cancellation from outside) can let in-flight reconciles finish;
        # a lost lease cancels them at once (the elector has already stopped believing it leads).
        inner = anyio.CancelScope(shield=True)

        async def run_all() -> None:
            try:
                with inner:
                    async with anyio.create_task_group() as tg:
                        for controller, _ in self._controllers:
                            tg.start_soon(controller.run, informers, name=f"controller {controller.name}")
            finally:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_all, name=f"shard {self.shard_id} controllers")
            try:
                await done.wait()
            finally:
                with anyio.CancelScope(shield=True):
                    renewed = elector.last_renewal
                    if elector.is_leader and renewed is not None:
                        for controller, _ in self._controllers:
                            controller.stop()
                        # renewals stop with this task group: finish within the renew deadline
                        left = renewed + self.config.renew_deadline - self._clock.monotonic() - 0.5
                        async with move_on_after(
                            self._clock, max(0.0, min(left, self.graceful_shutdown_timeout))
                        ):
                            await done.wait()
                    inner.cancel()
                    await done.wait()

    async def _acknowledge(self, resource: Resource, request: Request, drain: str) -> None:
        """Hand the object back: remove the shard and drain labels if they still say what we saw."""
        config = self.config
        shard_path = f"/metadata/labels/{_json_pointer(config.shard_label)}"
        drain_path = f"/metadata/labels/{_json_pointer(config.drain_label)}"
        ops = [
            {"op": "test", "path": shard_path, "value": self.shard_id},
            {"op": "test", "path": drain_path, "value": drain},
            {"op": "remove", "path": shard_path},
            {"op": "remove", "path": drain_path},
        ]
        try:
            await request_json(
                self._api,
                "PATCH",
                resource.path(request.namespace, request.name),
                body=ops,
                content_type="application/json-patch+json",
            )
        except (NotFound, Invalid, Conflict):
            return  # gone, or the labels changed meanwhile (a stale cache): nothing to hand back
        except ApiError as exc:
            if exc.status == 422:
                return
            raise
        self._m_drains.inc()
        self._log.debug("drained", object=str(request))


# --------------------------------------------------------------------------------------------- sharder


@dataclasses.dataclass
class _Claim:
    lease: dict[str, Any]
    started: float
    uncertain: bool = False
    in_flight: int = 0


@dataclasses.dataclass
class _Observed:
    record: tuple[Any, ...]
    at: float


class Sharder:
    """Assigns a ring's objects to the alive shards (module doc); one leads per ring.

    :meth:`run` campaigns for the Lease ``<ring>-sharder`` and, while leading, keeps the labels of
    the primary objects and their children in line with the hash ring over the alive shards. It
    campaigns again after losing the Lease. Its informers (Leases of the ring; the primary and owned
    resources, metadata only) exist only while it leads, so standby replicas cache nothing for it.
    ``max_in_flight`` bounds concurrent label writes. ``api_client`` serves the sharder's Lease,
    claims, informers and writes. A pass over every object runs at most every ``debounce`` seconds
    while events arrive (a few milliseconds per thousand objects), and every half retry period.
    """

    def __init__(
        self,
        api_client: Any,
        config: ShardingConfig,
        *,
        identity: str | None = None,
        clock: Clock | None = None,
        max_in_flight: int = 16,
        debounce: float = 0.2,
    ) -> None:
        self._api = api_client
        self.config = config
        self.identity = identity or default_identity()
        self._clock: Clock = clock or SystemClock()
        self.max_in_flight = max_in_flight
        self.debounce = debounce
        self.elector: LeaderElector | None = None
        self._claim_identity = f"{CLAIM_PREFIX}{self.identity}"[:253]
        self._observed: dict[str, _Observed] = {}
        self._claims: dict[str, _Claim] = {}
        self._pending: dict[tuple[int, str], Any] = {}
        self._wake = anyio.Event()
        self._leases: Informer | None = None
        self._primary: Informer | None = None
        self._owned: list[Informer] = []
        self._ring = HashRing(virtual_nodes=config.virtual_nodes)
        self._log = _log.bind(ring=config.ring, sharder=self.identity)
        self.passes = 0
        """Completed assignment passes (diagnostics and tests)."""

    # ------------------------------------------------------------------------------------- run

    def attach(self, manager: Manager) -> None:
        """Run this sharder with ``manager`` on every replica; one of them leads."""
        manager.add_runnable(self.run, needs_leader=False, name=f"sharder {self.config.ring}")

    async def run(self) -> None:
        """Campaign, lead, and campaign again after a loss, until cancelled."""
        config = self.config
        while True:
            elector = LeaderElector(
                self._api,
                LeaderElectionConfig(
                    lease_name=f"{config.ring}-sharder",
                    lease_namespace=config.lease_namespace,
                    identity=self.identity,
                    lease_duration=config.lease_duration,
                    renew_deadline=config.renew_deadline,
                    retry_period=config.retry_period,
                    labels={RING_LABEL: config.ring},
                ),
                clock=self._clock,
            )
            self.elector = elector
            await elector.run_while_leading(self._lead)
            self._log.warning("sharder lost its lease; campaigning again")

    def alive_shards(self) -> set[str]:
        """Shards whose Lease is held by a shard and not expired, as this sharder observed them."""
        now = self._clock.monotonic()
        alive: set[str] = set()
        if self._leases is None:
            return alive
        for lease in self._leases.store.list():
            shard_id = _labels(lease).get(SHARD_ID_LABEL)
            if not shard_id:
                continue
            record = lease_record(lease)
            holder = record[0]
            if not holder or str(holder).startswith(CLAIM_PREFIX):
                continue
            seen = self._observed.get(_key(lease))
            duration = record[4] if isinstance(record[4], int | float) and record[4] > 0 else 1
            if seen is not None and now < seen.at + float(duration):
                alive.add(str(shard_id))
        return alive

    def _on_lease(self, lease: Mapping[str, Any]) -> None:
        key = _key(lease)
        record = lease_record(lease)
        seen = self._observed.get(key)
        if seen is None or seen.record != record:
            self._observed[key] = _Observed(record, self._clock.monotonic())
        self._poke()

    def _on_lease_delete(self, lease: Mapping[str, Any]) -> None:
        self._observed.pop(_key(lease), None)
        self._poke()

    def _poke(self) -> None:
        self._wake.set()

    async def _lead(self) -> None:
        config = self.config
        factory = InformerFactory(self._api, clock=self._clock)
        self._observed.clear()
        self._claims.clear()
        self._pending.clear()
        self._leases = factory.informer(
            LEASES, namespace=config.lease_namespace, label_selector=f"{RING_LABEL}={config.ring}"
        )
        self._leases.add_handler(
            ResourceEventHandlerFuncs(
                add=lambda obj, _initial: self._on_lease(obj),
                update=lambda _old, new: self._on_lease(new),
                delete=self._on_lease_delete,
            )
        )
        poke = ResourceEventHandlerFuncs(
            add=lambda _obj, _initial: self._poke(),
            update=lambda _old, _new: self._poke(),
            delete=lambda _obj: self._poke(),
        )
        self._primary = factory.informer(
            config.resource, namespace=config._scope(config.resource), metadata_only=True
        )
        self._primary.add_handler(poke)
        self._owned = []
        for owned in config.owns:
            informer = factory.informer(owned, namespace=config._scope(owned), metadata_only=True)
            informer.add_handler(poke)
            self._owned.append(informer)
        self._log.info("sharder leading")
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(factory.run, name=f"sharder {config.ring} informers")
                await factory.wait_for_sync()
                while True:
                    self._wake = anyio.Event()
                    await self._pass()
                    self.passes += 1
                    async with move_on_after(self._clock, config.retry_period / 2):
                        await self._wake.wait()
                    await self._clock.sleep(self.debounce)
        finally:
            self._leases = None
            self._primary = None
            self._owned = []

    # ----------------------------------------------------------------------------------- passes

    async def _pass(self) -> None:
        """One level-based pass: compute every label that is wrong and write it."""
        config = self.config
        assert self._primary is not None
        alive = self.alive_shards()
        if alive != self._ring.nodes:
            added, removed = alive - self._ring.nodes, self._ring.nodes - alive
            for node in removed:
                self._ring.remove(node)
            for node in added:
                self._ring.add(node)
            self._log.info(
                "shards changed", alive=sorted(alive), added=sorted(added), removed=sorted(removed)
            )
        SHARDER_ALIVE.labels(config.ring).set(len(alive))
        writes: list[Callable[[], Awaitable[None]]] = []
        counts: dict[str, int] = dict.fromkeys(alive, 0)
        dead_with_objects: set[str] = set()
        owner_shards: dict[str, str] = {}
        primary_store = self._primary.store
        for obj in primary_store.list():
            meta = obj.get("metadata") or {}
            key = _key(obj)
            labels = meta.get("labels") or {}
            current = labels.get(config.shard_label) or None
            drain = labels.get(config.drain_label)
            if current is not None:
                counts[current] = counts.get(current, 0) + 1
                owner_shards[key] = current
            pending = (0, key)
            rv = meta.get("resourceVersion")
            if pending in self._pending:
                if self._pending[pending] == rv:
                    continue  # our write is not in the cache yet
                del self._pending[pending]
            target = self._ring.get(key)
            if current is not None and current in alive:
                if target is None or target == current:
                    if drain is not None:
                        writes.append(
                            self._writer(config.resource, obj, {config.drain_label: None}, "undrain")
                        )
                elif drain is None:
                    writes.append(self._writer(config.resource, obj, {config.drain_label: "true"}, "drain"))
            elif current is not None:
                # Claim a dead shard only when its objects have somewhere to go: with no shard alive,
                # a claim would only keep the restarting shards from taking their Leases back.
                if target is not None:
                    dead_with_objects.add(current)
                    claim = self._claims.get(current)
                    if claim is not None and self._claim_valid(claim):
                        writes.append(
                            self._writer(
                                config.resource,
                                obj,
                                {config.shard_label: target, config.drain_label: None},
                                "direct",
                                claim=claim,
                            )
                        )
            elif target is not None:
                patch: dict[str, str | None] = {config.shard_label: target}
                if drain is not None:
                    patch[config.drain_label] = None
                writes.append(self._writer(config.resource, obj, patch, "assign"))
        for shard_id, count in counts.items():
            SHARDER_ASSIGNED.labels(config.ring, shard_id).set(count)
        # forget pending writes of objects that are gone
        present = {(0, _key(o)) for o in primary_store.list()}
        for index, informer in enumerate(self._owned, start=1):
            present.update((index, _key(o)) for o in informer.store.list())
        for gone in [k for k in self._pending if k not in present]:
            del self._pending[gone]
        for index, informer in enumerate(self._owned, start=1):
            writes.extend(self._child_writes(index, informer, owner_shards))
        await self._manage_claims(dead_with_objects, alive)
        if writes:
            limiter = anyio.CapacityLimiter(self.max_in_flight)

            async def limited(write: Callable[[], Awaitable[None]]) -> None:
                async with limiter:
                    await write()

            async with anyio.create_task_group() as tg:
                for write in writes:
                    tg.start_soon(limited, write)

    def _child_writes(
        self, index: int, informer: Informer, owner_shards: Mapping[str, str]
    ) -> list[Callable[[], Awaitable[None]]]:
        config = self.config
        primary = config.resource
        writes: list[Callable[[], Awaitable[None]]] = []
        for obj in informer.store.list():
            meta = obj.get("metadata") or {}
            owner = controller_name(obj, primary)
            if owner is None:
                continue
            namespace = meta.get("namespace")
            owner_key = f"{namespace}/{owner}" if primary.namespaced and namespace else str(owner)
            wanted = owner_shards.get(owner_key)
            if wanted is None or (meta.get("labels") or {}).get(config.shard_label) == wanted:
                continue
            pending = (index, _key(obj))
            if pending in self._pending:
                if self._pending[pending] == meta.get("resourceVersion"):
                    continue
                del self._pending[pending]
            writes.append(
                self._writer(
                    informer.resource,
                    obj,
                    {config.shard_label: wanted},
                    "child",
                    precondition=False,
                    slot=index,
                )
            )
        return writes

    def _writer(
        self,
        resource: Resource,
        obj: Mapping[str, Any],
        labels: Mapping[str, str | None],
        how: str,
        *,
        claim: _Claim | None = None,
        precondition: bool = True,
        slot: int = 0,
    ) -> Callable[[], Awaitable[None]]:
        meta = obj.get("metadata") or {}
        rv = meta.get("resourceVersion")
        key = _key(obj)
        self._pending[(slot, key)] = rv
        body_meta: dict[str, Any] = {"labels": dict(labels)}
        if precondition:
            body_meta["resourceVersion"] = rv  # conditional on the version we decided on
        path = resource.path(meta.get("namespace") if resource.namespaced else None, str(meta.get("name")))
        ring = self.config.ring

        async def write() -> None:
            if claim is None:
                await send()
                return
            if not self._claim_valid(claim):
                self._pending.pop((slot, key), None)
                return  # the claim ran out: moves wait for a renewed one
            claim.in_flight += 1
            try:
                await send()
            finally:
                claim.in_flight -= 1

        async def send() -> None:
            try:
                await request_json(
                    self._api,
                    "PATCH",
                    path,
                    body={"metadata": body_meta},
                    content_type="application/merge-patch+json",
                    timeout=self.config.renew_deadline,
                )
            except (Conflict, NotFound, Invalid):
                self._pending.pop((slot, key), None)
                return  # changed or gone since: the next pass decides again
            except CALL_FAILURES as exc:
                self._pending.pop((slot, key), None)
                if claim is not None:
                    claim.uncertain = True  # the write may still land: let the claim expire instead
                self._log.debug("label write failed", object=key, error=repr(exc))
                return
            SHARDER_MOVES.labels(ring, how).inc()

        return write

    # ------------------------------------------------------------------------------------- claims

    def _claim_valid(self, claim: _Claim) -> bool:
        return self._clock.monotonic() < claim.started + self.config.renew_deadline

    async def _manage_claims(self, dead_with_objects: set[str], alive: set[str]) -> None:
        """Claim the Lease of every dead shard that still has objects; release claims whose shard
        has none left (or came back -- then the claim was lost to it)."""
        for shard_id in list(self._claims):
            claim = self._claims[shard_id]
            if shard_id in alive:
                del self._claims[shard_id]
                continue
            if shard_id not in dead_with_objects and not claim.in_flight:
                del self._claims[shard_id]
                if not claim.uncertain and self._claim_valid(claim):
                    await self._release(shard_id, claim)
                continue
            if (
                self._clock.monotonic()
                >= claim.started + self.config.renew_deadline - self.config.retry_period
            ):
                await self._claim(shard_id, claim.lease)
        for shard_id in dead_with_objects - set(self._claims):
            await self._claim(shard_id, None)

    async def _claim(self, shard_id: str, previous: dict[str, Any] | None) -> None:
        config = self.config
        name = shard_lease_name(config.ring, shard_id)
        lease = previous
        if lease is None and self._leases is not None:
            lease = self._leases.store.get_object(config.lease_namespace, name)
        started = self._clock.monotonic()
        now = format_micro_time(self._clock.now())
        labels = {RING_LABEL: config.ring, SHARD_ID_LABEL: shard_id}
        try:
            if lease is None:
                if not _LABEL_NAME.match(shard_id):
                    return  # not a shard id any shard could use: leave the objects alone
                body = {
                    "apiVersion": LEASES.api_version,
                    "kind": LEASES.kind,
                    "metadata": {"name": name, "namespace": config.lease_namespace, "labels": labels},
                    "spec": {},
                }
                body = taken_lease(body, self._claim_identity, config.lease_duration, now)
                answer = await request_json(
                    self._api,
                    "POST",
                    LEASES.path(config.lease_namespace),
                    body=body,
                    timeout=config.renew_deadline,
                )
            else:
                holder = str(lease_record(lease)[0] or "")
                if holder and holder != self._claim_identity and shard_id in self.alive_shards():
                    return
                body = taken_lease(lease, self._claim_identity, config.lease_duration, now, labels=labels)
                answer = await request_json(
                    self._api,
                    "PUT",
                    LEASES.path(config.lease_namespace, name),
                    body=body,
                    timeout=config.renew_deadline,
                )
        except (Conflict, AlreadyExists, NotFound):
            self._claims.pop(shard_id, None)
            return  # the shard (or someone) wrote it meanwhile: look again next pass
        except CALL_FAILURES as exc:
            self._claims.pop(shard_id, None)
            self._log.debug("claim failed", shard=shard_id, error=repr(exc))
            return
        claim = self._claims.get(shard_id)
        if claim is None:
            self._log.info("claimed a dead shard's lease; moving its objects", shard=shard_id)
            self._claims[shard_id] = _Claim(answer, started)
        else:  # renewed: writes holding this claim see the new validity
            claim.lease, claim.started = answer, started
        self._poke()

    async def _release(self, shard_id: str, claim: _Claim) -> None:
        now = format_micro_time(self._clock.now())
        name = shard_lease_name(self.config.ring, shard_id)
        with contextlib.suppress(*CALL_FAILURES):
            await request_json(
                self._api,
                "PUT",
                LEASES.path(self.config.lease_namespace, name),
                body=released_lease(claim.lease, now),
                timeout=self.config.renew_deadline,
            )
            self._log.info("released the claim on a dead shard's lease", shard=shard_id)
