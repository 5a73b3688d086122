"""The LoadTest controller: each ``LoadTest`` runs once as a Job of the vegeta load generator.

Contract
--------
For each ``LoadTest`` NAME (``loadtests.beta.kuar.com/v1``) in namespace NS and each generation of
its spec, the controller runs one batch/v1 Job ``NS/NAME-loadtest``: one Pod of vegeta
(:data:`LOAD_IMAGE`) sending ``GET SCHEME://SERVICE/PATH`` for every path in turn
(``spec.paths``, default ``["/"]``) at ``spec.requestsPerSecond`` for ``spec.durationSeconds``
(CRD default 60), then printing vegeta's text report to the Pod's log. The targets reach the
container as JSON lines in an environment variable (vegeta's ``-format=json``), never through the
shell's parser, so no spec value can change the command or add a target host. ``backoffLimit: 0``:
a failed load test is reported, not repeated; ``activeDeadlineSeconds`` is the duration plus
:data:`DEADLINE_MARGIN_SECONDS`.

The Job carries a controller ownerReference (``blockOwnerDeletion: true``) to the LoadTest, so
deleting the LoadTest deletes the Job (and the Job its Pods) through the garbage collector.

Adoption policy (as in the Website example): the controller writes only a Job it created or that
carries this LoadTest's controller ownerReference. A missing Job is *created* (never applied, so an
object of that name created meanwhile is not overwritten); a Job of that name that this LoadTest
does not control is never written, adopted or deleted: ``Complete=False`` reason ``ChildConflict``,
a Warning event, re-checked every ``conflict_retry_seconds``.

Runs: the annotation ``beta.kuar.com/loadtest-generation`` on the Job names the LoadTest generation
it runs. A spec change (new generation) replaces our Job: the old one is deleted
(``propagationPolicy: Background``, uid precondition, so the Pods go too) and a new one is created.
A Job's pod template is immutable, so other drift of our Job (a label we set removed by hand) is
repaired by server-side apply (field manager ``loadtest-controller``, ``force``) and the run is not
restarted. ``status.job`` records ``{name, uid, generation}`` of the Job started for the current
generation: when that Job is deleted by someone else (or by a TTL) the controller does *not* run
the load again -- the LoadTest reports ``JobDeleted`` (or keeps its final phase) until its spec
changes.

Status (status subresource, written only when it changed, conditional on the resourceVersion read):
``observedGeneration``; ``phase`` -- ``Pending`` (no Pod of the Job running yet: being created,
scheduled, pulling the image), ``Running`` (a Pod is ready, i.e. vegeta runs), ``Succeeded``,
``Failed`` or ``Invalid``; ``active`` / ``ready`` / ``succeeded`` / ``failed`` Pod counts,
``startTime`` and ``completionTime`` copied from the Job's status; ``job``; and a ``Complete``
condition: ``True`` reason ``JobComplete`` once the Job has ``Complete=True``; ``False`` with reason
``JobPending``, ``JobRunning``, ``JobFailed`` (the Job's ``Failed`` message, e.g. backoff limit or
deadline exceeded), ``JobDeleted``, ``InvalidSpec``, ``ChildConflict`` or ``ChildRejected``.

An invalid spec (the rules of :func:`examples.loadtest.webhooks.problems`, checked here too because
the webhook may be absent or set to ``failurePolicy: Ignore``, plus a name too long for the Job)
sets phase ``Invalid``, ``Complete=False`` reason ``InvalidSpec``, one Warning event per
generation, leaves an existing Job alone and ends in
:class:`~kctl_runtime.reconcile.TerminalError` (not retried until the LoadTest changes). A Job
write the API server rejects for good (422) is ``ChildRejected`` with a Warning, retried with
backoff.

NOT done: the report (latencies, success ratio) stays in the Pod's log; the LoadTest does not parse
it, and a run whose requests all failed still ends ``Succeeded`` (vegeta exits 0). Not verified by
the tests: that :data:`LOAD_IMAGE` runs (no tier runs Pods; it is never pulled).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import structlog

from examples.loadtest.webhooks import problems
from examples.website_controller.controller import EventSink, covers
from kctl_runtime.client import Client
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.conditions import find_condition, set_condition
from kctl_runtime.controller import Controller
from kctl_runtime.errors import AlreadyExists, Invalid, NotFound
from kctl_runtime.ownership import controller_reference, not_controlled_by
from kctl_runtime.predicates import generation_changed
from kctl_runtime.reconcile import Request, RequeueAfter, TerminalError
from kctl_runtime.resource import JOBS, Resource

__all__ = [
    "DEADLINE_MARGIN_SECONDS",
    "DEFAULT_DURATION_SECONDS",
    "FIELD_MANAGER",
    "GENERATION_ANNOTATION",
    "LOADTESTS",
    "LOAD_IMAGE",
    "LoadTestReconciler",
    "desired_job",
    "job_name",
    "loadtest_controller",
    "progress",
    "targets",
    "validate_loadtest",
]

_log = structlog.get_logger("examples.loadtest")

LOADTESTS = Resource("beta.kuar.com", "v1", "loadtests", "LoadTest")
"""The LoadTest custom resource (see ``crd.yaml``)."""

FIELD_MANAGER = "loadtest-controller"
"""The server-side-apply field manager of the controller's writes."""

LOAD_IMAGE = "peterevans/vegeta:latest-vegeta12.8.4"
"""vegeta 12.8.4 (github.com/tsenart/vegeta) on Alpine, with a shell (peter-evans/vegeta-docker)."""

GENERATION_ANNOTATION = "beta.kuar.com/loadtest-generation"
"""On the Job: the LoadTest generation it runs."""

DEFAULT_DURATION_SECONDS = 60
DEADLINE_MARGIN_SECONDS = 120
"""How long past ``durationSeconds`` a run may take (image pull, start, the report) before the Job
controller stops it (``DeadlineExceeded``)."""

_SUFFIX = "-loadtest"
_MAX_NAME = 63  # a Job's name is copied into a label value of its Pods
_NOBODY = 65534
# vegeta reads the targets from stdin; pipefail makes a failed attack fail the Pod.
_SCRIPT = (
    'set -o pipefail; printf "%s\\n" "$TARGETS" | '
    'vegeta attack -format=json -rate="${RATE}/1s" -duration="${DURATION}s" | vegeta report'
)


def job_name(loadtest_name: str) -> str:
    """The name of the Job running a LoadTest."""
    return f"{loadtest_name}{_SUFFIX}"


def labels_for(loadtest_name: str) -> dict[str, str]:
    """The labels on the Job and its Pods."""
    return {
        "app.kubernetes.io/name": "loadtest",
        "app.kubernetes.io/instance": loadtest_name,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }


def owner_reference(loadtest: Mapping[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to ``loadtest``: the garbage collector deletes the Job with it."""
    meta = loadtest["metadata"]
    return controller_reference(LOADTESTS, meta["name"], meta["uid"])


def validate_loadtest(loadtest: Mapping[str, Any]) -> list[str]:
    """Everything wrong with ``loadtest`` (the webhook's rules and the Job name); never raises."""
    spec = loadtest.get("spec")
    if not isinstance(spec, Mapping):
        return ["spec is missing"]
    found = problems(dict(spec))
    name = str((loadtest.get("metadata") or {}).get("name", ""))
    if len(job_name(name)) > _MAX_NAME:
        found.append(
            f"metadata.name {name!r} is too long to name the Job: "
            f"at most {_MAX_NAME - len(_SUFFIX)} characters"
        )
    return found


def targets(spec: Mapping[str, Any]) -> list[str]:
    """vegeta's JSON targets, one line per path (default ``/``), in the order of ``spec.paths``."""
    scheme = spec.get("scheme") or "http"
    paths = spec.get("paths") or ["/"]
    return [
        json.dumps({"method": "GET", "url": f"{scheme}://{spec['service']}{path}"}, separators=(",", ":"))
        for path in paths
    ]


def desired_job(loadtest: Mapping[str, Any]) -> dict[str, Any]:
    """The Job running ``loadtest``'s current generation (call :func:`validate_loadtest` first)."""
    meta = loadtest["metadata"]
    spec = loadtest["spec"]
    name = meta["name"]
    duration = int(spec.get("durationSeconds") or DEFAULT_DURATION_SECONDS)
    labels = labels_for(name)
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": _NOBODY,
        "runAsGroup": _NOBODY,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {GENERATION_ANNOTATION: str(meta.get("generation", 1))},
            "ownerReferences": [owner_reference(loadtest)],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": duration + DEADLINE_MARGIN_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {
                            "name": "vegeta",
                            "image": LOAD_IMAGE,
                            "command": ["sh", "-c", _SCRIPT],
                            "env": [
                                {"name": "TARGETS", "value": "\n".join(targets(spec))},
                                {"name": "RATE", "value": str(int(spec["requestsPerSecond"]))},
                                {"name": "DURATION", "value": str(duration)},
                            ],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "securityContext": restricted,
                        }
                    ],
                },
            },
        },
    }


def progress(job: Mapping[str, Any] | None) -> tuple[str, bool, str, str]:
    """``(phase, complete, reason, message)`` of a run from its Job (``None``: not created yet)."""
    if job is None:
        return "Pending", False, "JobPending", "the Job does not exist yet"
    status = job.get("status") or {}
    conditions = status.get("conditions") or ()
    for type_, phase, reason, verb in (
        ("Complete", "Succeeded", "JobComplete", "completed"),
        ("Failed", "Failed", "JobFailed", "failed"),
    ):
        condition = find_condition(conditions, type_)
        if condition is not None and condition.get("status") == "True":
            detail = condition.get("message") or condition.get("reason") or type_
            return phase, type_ == "Complete", reason, f"the Job {verb}: {detail}"
    active, ready = int(status.get("active") or 0), int(status.get("ready") or 0)
    if ready:
        return "Running", False, "JobRunning", f"{ready} of {active} active Pod(s) running"
    if active:
        return "Pending", False, "JobPending", f"{active} active Pod(s), none running yet"
    return "Pending", False, "JobPending", "waiting for the Job controller to create the Pod"


# ------------------------------------------------------------------------------------------ reconciler

_STATUS_FIELDS = (
    "observedGeneration",
    "phase",
    "conditions",
    "active",
    "ready",
    "succeeded",
    "failed",
    "startTime",
    "completionTime",
    "job",
)


class LoadTestReconciler:
    """Runs one LoadTest's Job and mirrors its progress into the LoadTest's status (module doc)."""

    def __init__(
        self,
        client: Client,
        events: EventSink,
        *,
        clock: Clock | None = None,
        conflict_retry_seconds: float = 60.0,
    ) -> None:
        self.client = client
        self.events = events
        self.clock: Clock = clock or SystemClock()
        self.conflict_retry_seconds = conflict_retry_seconds

    async def reconcile(self, request: Request) -> RequeueAfter | None:
        try:
            loadtest = await self.client.get(LOADTESTS, request.name, request.namespace)
        except NotFound:
            return None  # deleted: the garbage collector removes the Job
        meta = loadtest["metadata"]
        if meta.get("deletionTimestamp"):
            return None
        found = validate_loadtest(loadtest)
        if found:
            message = "; ".join(found)
            await self._report(loadtest, "Invalid", "InvalidSpec", message, warn=True)
            raise TerminalError(f"invalid LoadTest: {message}")
        desired = desired_job(loadtest)
        name, namespace = desired["metadata"]["name"], meta["namespace"]
        job = await self._read(name, namespace)
        problem = not_controlled_by(job, meta["uid"], LOADTESTS.kind)
        if problem is not None:
            return await self._conflict(loadtest, name, problem)
        generation = str(meta.get("generation", 1))
        started = (loadtest.get("status") or {}).get("job") or {}
        if job is not None and _annotation(job) != generation:
            await self._replace(loadtest, job)
            job = None
        elif job is None and started.get("generation") == generation:
            # Started for this generation before: look past the cache before calling it deleted.
            job = await self._read(name, namespace, live=True)
            if job is None or job["metadata"]["uid"] != started.get("uid"):
                await self._job_deleted(loadtest, started)
                return None
        try:
            if job is None:
                job = await self._create(loadtest, desired)
                if job is None:
                    return RequeueAfter(1.0)  # the old Job is still being deleted
            elif not covers(job, desired):
                job = await self._apply(loadtest, desired)
        except _TakenMeanwhile as taken:
            return await self._conflict(loadtest, name, str(taken))
        except Invalid as exc:
            await self._report(
                loadtest,
                "Pending",
                "ChildRejected",
                f"the API server rejected Job {name}: {exc.message}",
                warn=True,
            )
            raise  # retried with backoff: the cause may be fixed by hand
        await self._write_progress(loadtest, job)
        return None

    # ------------------------------------------------------------------ the Job

    async def _read(self, name: str, namespace: str, *, live: bool = False) -> dict[str, Any] | None:
        try:
            return await (self.client.api if live else self.client).get(JOBS, name, namespace)
        except NotFound:
            return None

    async def _create(self, loadtest: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any] | None:
        """Create the Job; ``None`` when the name is still held by our Job of an older generation."""
        meta = desired["metadata"]
        try:
            job = await self.client.create(JOBS, desired, field_manager=FIELD_MANAGER)
        except AlreadyExists:
            fresh = await self._read(meta["name"], meta["namespace"], live=True)
            problem = not_controlled_by(fresh, loadtest["metadata"]["uid"], LOADTESTS.kind)
            if problem is not None:
                raise _TakenMeanwhile(problem) from None
            if fresh is None or _annotation(fresh) != meta["annotations"][GENERATION_ANNOTATION]:
                return None
            return fresh  # our own earlier create, not in the cache yet
        self.events.event(loadtest, "Normal", "Created", f"created Job {meta['name']}")
        _log.info("created job", job=meta["name"], namespace=meta["namespace"])
        return job

    async def _apply(self, loadtest: Mapping[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        meta = desired["metadata"]
        job: dict[str, Any] = await self.client.patch(
            JOBS,
            meta["name"],
            desired,
            namespace=meta["namespace"],
            patch_type="apply",
            field_manager=FIELD_MANAGER,
            force=True,
        )
        self.events.event(loadtest, "Normal", "Updated", f"updated Job {meta['name']} to match the LoadTest")
        return job

    async def _replace(self, loadtest: Mapping[str, Any], job: Mapping[str, Any]) -> None:
        """Delete our Job of an older generation (its Pods too); the caller creates the new one."""
        meta = job["metadata"]
        await self.client.delete(
            JOBS,
            meta["name"],
            namespace=meta["namespace"],
            propagation_policy="Background",
            preconditions={"uid": meta["uid"]},
            ignore_not_found=True,
        )
        self.events.event(
            loadtest,
            "Normal",
            "Restarted",
            f"the spec changed: deleted Job {meta['name']} of generation {_annotation(job)} to run it again",
        )

    async def _conflict(self, loadtest: Mapping[str, Any], name: str, problem: str) -> RequeueAfter:
        message = f"Job {name} already exists and {problem}; delete or rename it"
        await self._report(loadtest, "Pending", "ChildConflict", message, warn=True)
        return RequeueAfter(self.conflict_retry_seconds)  # the other Job may go away

    async def _job_deleted(self, loadtest: Mapping[str, Any], started: Mapping[str, Any]) -> None:
        phase = (loadtest.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            return  # a finished run whose Job was cleaned up: the status keeps its result
        message = (
            f"Job {started.get('name')} was deleted before it finished; "
            "change the LoadTest's spec to run it again"
        )
        await self._report(loadtest, "Failed", "JobDeleted", message, warn=True)

    # ------------------------------------------------------------------ status

    async def _write_progress(self, loadtest: Mapping[str, Any], job: Mapping[str, Any]) -> None:
        meta = loadtest["metadata"]
        status = _status_of(loadtest)
        phase, complete, reason, message = progress(job)
        set_condition(
            status["conditions"],
            type="Complete",
            status=complete,
            reason=reason,
            message=message,
            observed_generation=meta.get("generation"),
            now=self.clock.now(),
        )
        job_status = job.get("status") or {}
        status.update(
            observedGeneration=meta.get("generation"),
            phase=phase,
            active=int(job_status.get("active") or 0),
            ready=int(job_status.get("ready") or 0),
            succeeded=int(job_status.get("succeeded") or 0),
            failed=int(job_status.get("failed") or 0),
            job={
                "name": job["metadata"]["name"],
                "uid": job["metadata"]["uid"],
                "generation": _annotation(job),
            },
        )
        for key in ("startTime", "completionTime"):
            if job_status.get(key):
                status[key] = job_status[key]
            else:
                status.pop(key, None)
        await self._patch_status(loadtest, status)

    async def _report(
        self, loadtest: Mapping[str, Any], phase: str, reason: str, message: str, *, warn: bool
    ) -> None:
        """``Complete=False`` with ``reason``; with ``warn``, one Warning event per generation."""
        generation = loadtest["metadata"].get("generation")
        status = _status_of(loadtest)
        previous = find_condition(status["conditions"], "Complete")
        already_reported = (
            previous is not None
            and previous.get("reason") == reason
            and previous.get("message") == message
            and status.get("observedGeneration") == generation
        )
        set_condition(
            status["conditions"],
            type="Complete",
            status=False,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=self.clock.now(),
        )
        status["observedGeneration"] = generation
        status["phase"] = phase
        await self._patch_status(loadtest, status)
        if warn and not already_reported:
            self.events.event(loadtest, "Warning", reason, message)

    async def _patch_status(self, loadtest: Mapping[str, Any], status: dict[str, Any]) -> None:
        """Merge-patch the status subresource when something we manage in it changed."""
        old = {k: v for k, v in (loadtest.get("status") or {}).items() if k in _STATUS_FIELDS}
        new = {k: v for k, v in status.items() if k in _STATUS_FIELDS}
        if old == new:
            return
        patch: dict[str, Any] = {key: None for key in old if key not in new}
        patch.update(new)
        meta = loadtest["metadata"]
        await self.client.patch(
            LOADTESTS,
            meta["name"],
            # conditional on what we read: a stale write (an ex-leader, an old cache) gets a 409
            {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": patch},
            namespace=meta["namespace"],
            subresource="status",
            field_manager=FIELD_MANAGER,
        )


def _status_of(loadtest: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of the managed part of ``status`` (the cached object is never touched)."""
    status = loadtest.get("status") or {}
    copied = {k: v for k, v in status.items() if k in _STATUS_FIELDS}
    copied["conditions"] = [dict(c) for c in status.get("conditions") or ()]
    return copied


def _annotation(job: Mapping[str, Any]) -> str | None:
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(GENERATION_ANNOTATION)
    return None if value is None else str(value)


class _TakenMeanwhile(Exception):
    """The Job's create found the name taken by an object we do not control."""


# -------------------------------------------------------------------------------------------- wiring


def loadtest_controller(
    client: Client,
    events: EventSink,
    *,
    namespace: str | None = None,
    clock: Clock | None = None,
    max_concurrent_reconciles: int = 2,
    conflict_retry_seconds: float = 60.0,
) -> Controller:
    """The LoadTest controller, ready for ``manager.add``.

    LoadTests are filtered with ``generation_changed`` (status writes do not reconcile again); every
    change of an owned Job -- its status above all -- enqueues its LoadTest.
    """
    return Controller(
        "loadtest",
        for_=LOADTESTS,
        reconciler=LoadTestReconciler(
            client, events, clock=clock, conflict_retry_seconds=conflict_retry_seconds
        ),
        owns=[JOBS],
        predicates=[generation_changed()],
        max_concurrent_reconciles=max_concurrent_reconciles,
        namespace=namespace,
        clock=clock,
    )
