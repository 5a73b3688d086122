"""The Website controller: a ``Website`` becomes an nginx + git-sync Deployment and a Service.

Contract
--------
For each ``Website`` NAME (``websites.extensions.example.com/v1``) in namespace NS the controller
keeps, as long as the Website's spec is valid:

* a Deployment ``NS/NAME-website``: ``spec.replicas`` pods of nginx (unprivileged image, port 8080)
  serving a shared emptyDir that a git-sync sidecar keeps in sync with ``spec.gitRepo`` at
  ``spec.branch``; pod labels ``app=website, website=NAME``;
* a Service ``NS/NAME-website`` of type NodePort, port 80 to the pods' ``http`` port, selecting
  ``app=website, website=NAME``.

Both children carry a controller ownerReference (``blockOwnerDeletion: true``) to the Website, so
deleting the Website deletes them through the garbage collector; the controller never deletes them
itself.

Adoption policy: the controller only ever writes a child that it creates itself or that already
carries its Website's controller ownerReference. A new child is *created* (a plain create, never an
apply), so an object of that name that appeared meanwhile is not overwritten; an existing object of
that name that the Website does not control -- controlled by something else, or by nothing -- is
never patched and never gets an ownerReference (deleting the Website then leaves it alone). It is
reported as ``Ready=False`` reason ``ChildConflict`` with a Warning event, and re-checked every
``conflict_retry_seconds``.

The reconcile is level-based and idempotent. It reads the Website and its children, builds the
desired children with :func:`desired_deployment` / :func:`desired_service` (pure functions of the
Website), and writes a child only when a field the controller manages differs from what is in the
cluster (:func:`covers`). Writes to an existing child are server-side apply with field manager
``website-controller`` and ``force``: the controller owns exactly the fields it sets and takes them
back from anyone who edits them by hand (drift repair), while fields set by others (another label,
the Service's nodePort, an HPA's replicas if you remove ours) are left alone. A child deleted by
hand is recreated: the controller watches the children it owns, so their events reconcile the
owning Website. A reconcile that wrote children records one Normal event naming them all (reason
``Created`` or ``Updated``), not one per child: events are API writes on the hot path.

Status (written through the status subresource, only when it changed):
``observedGeneration``; a ``Ready`` condition — ``True``/``DeploymentAvailable`` once the
Deployment reports ``availableReplicas >= replicas``, ``False`` with ``DeploymentProgressing``,
``DeploymentFailed`` (progress deadline exceeded), ``ScaledToZero`` or ``InvalidSpec`` otherwise;
the Service's ``clusterIP``, ``nodePort`` and ``url`` (``http://CLUSTER-IP:80``). A status write is
conditional on the Website's ``resourceVersion`` as read (a 409 then retries on fresh state): a
stale write -- from a replica that lost its lease mid-reconcile -- cannot replace a newer status.
While a Deployment whose status the cluster's Deployment controller keeps (its
``status.observedGeneration`` is set) has a generation that controller has not observed yet -- the
controller just changed it, or someone else did -- the Website's status waits for the report: the
Deployment's status event reconciles the Website again, and one spec change costs one status write,
not a "waiting for the Deployment controller" one followed at once by the real one. If no report
comes within ``rollout_grace_seconds`` (default 5 s) of the first reconcile that found the
generation unobserved, the status is written anyway (``Ready=False``, ``DeploymentProgressing``,
waiting for the Deployment controller). Where no Deployment controller ever reported (a new
Deployment, an API server without one) the status is written at once.

A child write the API server rejects for good (422, e.g. a hand-made child whose immutable
Deployment selector differs) sets ``Ready=False`` reason ``ChildRejected`` with the server's
message and a Warning event (once per generation), and is retried with the controller's rate
limiter backoff (5 ms doubling up to 1000 s), never in a hot loop.

An invalid spec that the CRD schema cannot catch (a non-https URL, credentials in the URL, a branch
that is not a valid git ref name, a Website name too long for its children) sets ``Ready=False``
reason ``InvalidSpec``, records one Warning event per generation, leaves existing children as they
are, and ends in :class:`~kctl_runtime.reconcile.TerminalError`: not retried until the Website
changes. Nothing here raises for bad user input, so a bad Website can neither crash the controller
nor make it loop. A URL's credentials (``https://user:token@host/...``) are never repeated: every
message quotes the URL through :func:`redact_url`. A child's name taken by an object the Website
does not control is reported the same way with reason ``ChildConflict``, but re-checked every
``conflict_retry_seconds`` (that object may go away, and its deletion is not an event this
controller sees).

Typed: the reconciler reads the Website from the cache as a dict (the cache keeps dicts) and parses
it into :class:`~examples.website_controller.api.Website` (``Website.from_object``), so its field
access is checked by ``mypy --strict``; status is written as a typed
:class:`~examples.website_controller.api.WebsiteStatus` (``Website.status_patch``); the children
(Deployment, Service) stay dicts. A Website that passed the CRD's schema but does not parse into the
model -- stored before a schema change, or a value only the model rejects (``spec.gitRepo`` holding
a non-breaking space: the server's Go regexp ``\\s`` is ASCII-only, the model's is Unicode) -- gets
``Ready=False`` reason ``InvalidSpec`` naming the bad fields (``InvalidObject`` when the bad fields
are not in the spec), one Warning event per generation, and ends in the parse error, a
:class:`~kctl_runtime.reconcile.TerminalError`: one log line, not retried until the Website changes.

NOT done: the controller does not check that the repository exists or is reachable (git-sync retries
on its own; its failures show in the pod, not in the Website's status).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import structlog

from examples.website_controller.api import Website
from kctl_runtime.client import Client
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.controller import Controller
from kctl_runtime.customresource import InvalidObject, report_invalid, set_condition
from kctl_runtime.errors import AlreadyExists, Invalid, NotFound
from kctl_runtime.ownership import controller_reference, not_controlled_by
from kctl_runtime.predicates import generation_changed
from kctl_runtime.reconcile import Request, RequeueAfter, TerminalError
from kctl_runtime.resource import DEPLOYMENTS, SERVICES, Resource

__all__ = [
    "FIELD_MANAGER",
    "GIT_SYNC_IMAGE",
    "NGINX_IMAGE",
    "WEBSITES",
    "Address",
    "EventSink",
    "WebsiteReconciler",
    "awaiting_report",
    "child_name",
    "covers",
    "desired_deployment",
    "desired_service",
    "labels_for",
    "owner_reference",
    "readiness",
    "redact_url",
    "service_address",
    "validate_website",
    "website_controller",
]

_log = structlog.get_logger("examples.website_controller")

WEBSITES = Website.resource
"""The Website custom resource, declared by the class in ``api.py``."""

FIELD_MANAGER = "website-controller"
"""The server-side-apply field manager: the controller owns exactly the fields it applies."""

NGINX_IMAGE = "nginxinc/nginx-unprivileged:1.27-alpine"
"""nginx built to run as a non-root user (uid 101), listening on 8080."""

GIT_SYNC_IMAGE = "registry.k8s.io/git-sync/git-sync:v4.4.0"
"""git-sync v4: clones the repository into the shared volume and keeps it up to date."""

NGINX_UID = 101
GIT_SYNC_UID = 65533
HTTP_PORT = 8080
SERVICE_PORT = 80
SYNC_PERIOD = "30s"

_MAX_LABEL = 63
_SUFFIX = "-website"
# A Service name is a DNS-1035 label: lower case, starts with a letter, at most 63 characters.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Characters git forbids anywhere in a ref name (git check-ref-format, rule 4 and 5).
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def child_name(website_name: str) -> str:
    """The name shared by the Deployment and the Service of a Website."""
    return f"{website_name}{_SUFFIX}"


def labels_for(website_name: str) -> dict[str, str]:
    """The labels on the children and their pods; ``app`` and ``website`` also select the pods."""
    return {"app": "website", "website": website_name, "app.kubernetes.io/managed-by": FIELD_MANAGER}


def selector_for(website_name: str) -> dict[str, str]:
    """The pod selector of the Deployment and of the Service."""
    return {"app": "website", "website": website_name}


def owner_reference(website: Website) -> dict[str, Any]:
    """A controller ownerReference to ``website``: the garbage collector deletes children with it."""
    return controller_reference(WEBSITES, website.metadata.name, str(website.metadata.uid))


# The userinfo of a URL-like string: after an optional ``scheme://``, everything up to the last ``@``
# before the path. Matched on the raw text, so it works for URLs that do not parse.
_USERINFO = re.compile(r"^(?P<scheme>[^:/?#@\s]*://)?(?P<userinfo>[^/?#]*)@")


def redact_url(url: str) -> str:
    """``url`` with any credentials replaced by ``***`` (``https://***@host/x``), valid URL or not."""
    return _scrub(_USERINFO.sub(lambda m: f"{m.group('scheme') or ''}***@", url, count=1), url)


def _scrub(text: str, url: str) -> str:
    """``text`` with every occurrence of ``url``'s credentials (and their parts) replaced by ``***``."""
    match = _USERINFO.match(url)
    if match is None:
        return text
    userinfo = match.group("userinfo")
    # The whole userinfo, and its user and password wherever else they appear (a token pasted into
    # the port, say); parts of under 4 characters are too short to be a secret worth mangling text for.
    for secret in sorted({userinfo, *userinfo.split(":")}, key=len, reverse=True):
        if secret == userinfo or len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _check_git_url(url: str) -> list[str]:
    return [_scrub(problem, url) for problem in _git_url_problems(url, redact_url(url))]


def _git_url_problems(url: str, shown: str) -> list[str]:
    """What is wrong with ``url``; messages quote ``shown`` (the redacted URL), never ``url``."""
    try:
        parsed = urllib.parse.urlsplit(url)
        port = parsed.port  # raises ValueError for a malformed port
    except ValueError as exc:
        return [f"spec.gitRepo {shown!r} is not a valid URL: {exc}"]
    problems: list[str] = []
    if parsed.scheme != "https":
        problems.append(
            f"spec.gitRepo must be an https:// URL (the website pod clones without credentials), "
            f"got scheme {parsed.scheme or 'none'!r}"
        )
    if parsed.username is not None or parsed.password is not None:
        problems.append("spec.gitRepo must not contain credentials: they would be visible in the Deployment")
    if not parsed.hostname:
        problems.append(f"spec.gitRepo {shown!r} has no host")
    if port == 0:
        problems.append(f"spec.gitRepo {shown!r} has port 0")
    if parsed.query or parsed.fragment:
        problems.append("spec.gitRepo must not have a query or a fragment")
    if not parsed.path.strip("/"):
        problems.append(f"spec.gitRepo {shown!r} names no repository path")
    return problems


def _check_branch(branch: str) -> list[str]:
    """git check-ref-format --branch, as far as it can be checked without git."""
    bad = f"spec.branch {branch!r} is not a valid git branch name"
    if _REF_FORBIDDEN.search(branch):
        return [f"{bad}: it contains a space, a control character or one of ~ ^ : ? * [ \\"]
    if branch.startswith("-"):
        return [f"{bad}: it starts with '-'"]
    if branch == "@" or "@{" in branch:
        return [f"{bad}: '@' alone and '@{{' are reserved"]
    if ".." in branch:
        return [f"{bad}: it contains '..'"]
    if branch.startswith("/") or branch.endswith("/") or "//" in branch:
        return [f"{bad}: empty path component"]
    if branch.endswith("."):
        return [f"{bad}: it ends with '.'"]
    for component in branch.split("/"):
        if component.startswith(".") or component.endswith(".lock"):
            return [f"{bad}: a component starts with '.' or ends with '.lock'"]
    return []


def validate_website(website: Website) -> list[str]:
    """Everything wrong with ``website`` that its model cannot express; ``[]`` when valid.

    Types, lengths, the URL's shape and the replica bounds are the model's (a Website that breaks
    them does not parse); this checks what needs code. Never raises.
    """
    problems: list[str] = []
    name = website.metadata.name
    if len(child_name(name)) > _MAX_LABEL or not _DNS_1035.match(name):
        problems.append(
            f"metadata.name {name!r} cannot name a Service: it must start with a letter, use only "
            f"lower-case letters, digits and '-', and be at most {_MAX_LABEL - len(_SUFFIX)} characters"
        )
    problems.extend(_check_git_url(website.spec.git_repo))
    problems.extend(_check_branch(website.spec.branch))
    return problems


def _restricted_security_context(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def desired_deployment(website: Website) -> dict[str, Any]:
    """The Deployment ``NAME-website`` for a valid ``website`` (call :func:`validate_website` first).

    The pod shares one emptyDir, ``content``: git-sync (root ``/git``) checks the branch out under
    ``/git/.worktrees/`` and points the symlink ``/git/html`` at the current checkout; nginx mounts
    the same volume at ``/usr/share/nginx``, so its document root ``/usr/share/nginx/html`` *is* that
    symlink and every sync is picked up atomically. Both containers run as non-root with a read-only
    root filesystem; their scratch space is a second emptyDir at ``/tmp``.
    """
    name = website.metadata.name
    labels = labels_for(name)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": child_name(name),
            "namespace": website.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(website)],
        },
        "spec": {
            "replicas": website.spec.replicas,
            "selector": {"matchLabels": selector_for(name)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "fsGroup": GIT_SYNC_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "nginx",
                            "image": NGINX_IMAGE,
                            "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
                            "volumeMounts": [
                                {"name": "content", "mountPath": "/usr/share/nginx", "readOnly": True},
                                {"name": "tmp", "mountPath": "/tmp", "subPath": "nginx"},
                            ],
                            "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 10},
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "16Mi"},
                                "limits": {"memory": "64Mi"},
                            },
                            "securityContext": _restricted_security_context(NGINX_UID),
                        },
                        {
                            "name": "git-sync",
                            "image": GIT_SYNC_IMAGE,
                            "env": [
                                {"name": "GITSYNC_REPO", "value": website.spec.git_repo},
                                {"name": "GITSYNC_REF", "value": website.spec.branch},
                                {"name": "GITSYNC_ROOT", "value": "/git"},
                                {"name": "GITSYNC_LINK", "value": "html"},
                                {"name": "GITSYNC_PERIOD", "value": SYNC_PERIOD},
                                {"name": "HOME", "value": "/tmp"},
                            ],
                            "volumeMounts": [
                                {"name": "content", "mountPath": "/git"},
                                {"name": "tmp", "mountPath": "/tmp", "subPath": "git-sync"},
                            ],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "securityContext": _restricted_security_context(GIT_SYNC_UID),
                        },
                    ],
                    "volumes": [
                        {"name": "content", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }


def desired_service(website: Website) -> dict[str, Any]:
    """The NodePort Service ``NAME-website``: port 80 to the pods' ``http`` port.

    The nodePort is left to the API server to allocate (and is then owned by it, not by us), so
    re-applying never moves it.
    """
    name = website.metadata.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": child_name(name),
            "namespace": website.metadata.namespace,
            "labels": labels_for(name),
            "ownerReferences": [owner_reference(website)],
        },
        "spec": {
            "type": "NodePort",
            "selector": selector_for(name),
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


# Lists whose items the API server merges by a key (strategic merge / SSA list-map keys).
_LIST_KEYS = ("name", "uid", "containerPort", "port", "type", "mountPath")


def _item_key(item: Mapping[str, Any]) -> tuple[str, Any] | None:
    for key in _LIST_KEYS:
        if key in item:
            return key, item[key]
    return None


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _is_seq(value: Any) -> bool:
    return type(value) is list or (isinstance(value, Sequence) and not isinstance(value, str))


def covers(actual: Any, desired: Any) -> bool:
    """Whether ``actual`` already holds every field of ``desired`` with the same value.

    Fields only in ``actual`` (server defaults, other managers' fields, status) are ignored; items of
    a list of objects are matched by their merge key (``name``, ``uid``, ...) when they have one, so
    a hand-added container does not count as drift but a changed image of ours does. This is the
    "would applying change anything we own?" test that keeps the controller from writing on every
    reconcile. (It runs on every reconcile over a whole Deployment: JSON's concrete types are
    checked first, the abstract ``Mapping``/``Sequence`` only for other values.)
    """
    kind = type(desired)
    if kind is str or kind is bool or desired is None:
        return type(actual) is kind and actual == desired
    if kind is int or kind is float:
        # JSON numbers: 1 and 1.0 are the same value to the API server.
        return type(actual) in (int, float) and actual == desired
    if kind is dict or isinstance(desired, Mapping):
        if not _is_map(actual):
            return False
        for key, value in desired.items():
            if key not in actual or not covers(actual[key], value):
                return False
        return True
    if kind is list or _is_seq(desired):
        if not _is_seq(actual):
            return False
        keys = [_item_key(item) if _is_map(item) else None for item in desired]
        if all(key is not None for key in keys):
            for item, key in zip(desired, keys, strict=True):
                assert key is not None
                match = [a for a in actual if _is_map(a) and a.get(key[0]) == key[1]]
                if len(match) != 1 or not covers(match[0], item):
                    return False
            return True
        return len(actual) == len(desired) and all(covers(a, d) for a, d in zip(actual, desired, strict=True))
    return bool(actual == desired and type(actual) is type(desired)) or (
        isinstance(actual, int | float)
        and isinstance(desired, int | float)
        and not isinstance(actual, bool)
        and not isinstance(desired, bool)
        and actual == desired
    )


# ---------------------------------------------------------------------------------------------- status


def readiness(website: Website, deployment: Mapping[str, Any] | None) -> tuple[bool, str, str]:
    """``(ready, reason, message)`` for the Website's ``Ready`` condition, from its Deployment.

    Ready means "serving at the requested scale": ``availableReplicas >= spec.replicas`` as reported
    by the Deployment controller for the Deployment's current generation. A Deployment whose status
    still describes an older generation is progressing, whatever its counters say.
    """
    replicas = website.spec.replicas
    if deployment is None:
        return False, "DeploymentProgressing", "the Deployment does not exist yet"
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if replicas == 0:
        return False, "ScaledToZero", "spec.replicas is 0: nothing serves the site"
    if status.get("observedGeneration", 0) < generation:
        return False, "DeploymentProgressing", "waiting for the Deployment controller to roll out the change"
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return False, "DeploymentFailed", str(condition.get("message") or "progress deadline exceeded")
    available = int(status.get("availableReplicas") or 0)
    message = f"{available}/{replicas} replicas available"
    if available >= replicas:
        return True, "DeploymentAvailable", message
    return False, "DeploymentProgressing", message


def awaiting_report(deployment: Mapping[str, Any] | None) -> bool:
    """True when a Deployment controller keeps ``deployment``'s status but has not yet observed its
    current generation: its report on the change is on the way (module doc, *Status*)."""
    if deployment is None:
        return False
    observed = (deployment.get("status") or {}).get("observedGeneration")
    generation = (deployment.get("metadata") or {}).get("generation")
    return isinstance(observed, int) and isinstance(generation, int) and 0 < observed < generation


class Address(NamedTuple):
    """Where the site is served (the status fields ``clusterIP``, ``nodePort``, ``url``)."""

    cluster_ip: str | None = None
    node_port: int | None = None
    url: str | None = None


def service_address(service: Mapping[str, Any] | None) -> Address:
    """The site's address, from its Service (all ``None`` without one)."""
    spec = (service or {}).get("spec") or {}
    ip = spec.get("clusterIP")
    node_port = next(
        (
            int(p["nodePort"])
            for p in spec.get("ports") or ()
            if p.get("port") == SERVICE_PORT and p.get("nodePort")
        ),
        None,
    )
    if not ip or ip == "None":
        return Address(node_port=node_port)
    return Address(ip, node_port, f"http://{ip}:{SERVICE_PORT}")


# ------------------------------------------------------------------------------------------ reconciler


class EventSink(Protocol):
    """What the reconciler needs of an event recorder (``manager.event_recorder(...)``)."""

    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


class WebsiteReconciler:
    """Brings one Website's Deployment, Service and status in line with its spec (module doc)."""

    def __init__(
        self,
        client: Client,
        events: EventSink,
        *,
        clock: Clock | None = None,
        conflict_retry_seconds: float = 60.0,
        rollout_grace_seconds: float = 5.0,
        child_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.events = events
        self.clock: Clock = clock or SystemClock()
        self.conflict_retry_seconds = conflict_retry_seconds
        self.rollout_grace_seconds = rollout_grace_seconds
        # Websites whose status waits for the Deployment controller: (generation, since) by key
        self._waiting: dict[Request, tuple[int, float]] = {}
        self.child_labels = dict(child_labels or {})

    # --8<-- [start:reconcile]
    async def reconcile(self, request: Request) -> RequeueAfter | None:
        try:
            obj = await self.client.get(WEBSITES, request.name, request.namespace)  # a dict, from the cache
        except NotFound:
            self._waiting.pop(request, None)
            return None  # deleted: the garbage collector removes the children
        try:
            website = Website.from_object(obj)
        except InvalidObject as exc:
            await report_invalid(
                self.client,
                WEBSITES,
                obj,
                exc,
                events=self.events,
                now=self.clock.now(),
                field_manager=FIELD_MANAGER,
            )
            raise  # terminal: one log line, not retried until the Website changes
        if website.metadata.deletion_timestamp:
            return None
        problems = validate_website(website)
        if problems:
            await self._not_ready(website, "InvalidSpec", "; ".join(problems))
            raise TerminalError(f"invalid Website: {'; '.join(problems)}")
        # --8<-- [end:reconcile]
        uid = str(website.metadata.uid)
        children = [
            (DEPLOYMENTS, desired_deployment(website)),
            (SERVICES, desired_service(website)),
        ]
        current: dict[str, dict[str, Any] | None] = {}
        for resource, desired in children:  # check both before writing either
            current[resource.kind] = found = await self._read(resource, desired)
            problem = not_controlled_by(found, uid, WEBSITES.kind)
            if problem is not None:
                return await self._conflict(website, resource, desired["metadata"]["name"], problem)
        actual: dict[str, dict[str, Any] | None] = {}
        done: list[tuple[str, str]] = []  # (verb, what) this reconcile changed: one event says it all
        try:
            for resource, desired in children:
                try:
                    actual[resource.kind] = await self._converge(
                        website, resource, desired, current[resource.kind], done
                    )
                except _TakenMeanwhile as taken:
                    return await self._conflict(website, resource, desired["metadata"]["name"], str(taken))
                except Invalid as exc:
                    what = f"{resource.kind} {desired['metadata']['name']}"
                    await self._not_ready(
                        website, "ChildRejected", f"the API server rejected {what}: {exc.message}"
                    )
                    raise  # retried with the rate limiter's backoff: the cause may be fixed by hand
        finally:
            self._report(website, done)
        deployment = actual["Deployment"]
        wait = self._report_due(request, deployment)
        if wait:
            return RequeueAfter(wait)
        await self._write_status(website, deployment, actual["Service"])
        return None

    def _report_due(self, request: Request, deployment: Mapping[str, Any] | None) -> float:
        """Seconds the status write should still wait for the Deployment controller's report on the
        Deployment's current generation (0: write now). The wait starts when a reconcile first finds
        that generation unobserved and lasts ``rollout_grace_seconds`` (module doc, *Status*)."""
        if deployment is None or not awaiting_report(deployment):
            self._waiting.pop(request, None)
            return 0.0
        generation = int(deployment["metadata"]["generation"])
        now = self.clock.monotonic()
        waiting = self._waiting.get(request)
        if waiting is None or waiting[0] != generation:
            self._waiting[request] = waiting = (generation, now)
        return max(0.0, waiting[1] + self.rollout_grace_seconds - now)

    def _report(self, website: Website, done: list[tuple[str, str]]) -> None:
        """One Normal event for every child write of a reconcile (one event write, not one per child).

        Reason ``Created`` when every write created a child, else ``Updated``; the message names
        each child (``created Deployment web-website; created Service web-website``).
        """
        if not done:
            return
        reason = "Created" if all(verb == "created" for verb, _ in done) else "Updated"
        message = "; ".join(
            f"created {what}" if verb == "created" else f"updated {what} to match the Website"
            for verb, what in done
        )
        self.events.event(website.to_object(), "Normal", reason, message)

    async def _conflict(self, website: Website, resource: Resource, name: str, problem: str) -> RequeueAfter:
        """Report a child name taken by an object we do not control; look again later."""
        message = f"{resource.kind} {name} already exists and {problem}; delete or rename it"
        await self._not_ready(website, "ChildConflict", message)
        # Not terminal: the other object may go away, and its deletion is no event of ours.
        return RequeueAfter(self.conflict_retry_seconds)

    async def _read(self, resource: Resource, desired: Mapping[str, Any]) -> dict[str, Any] | None:
        meta = desired["metadata"]
        try:
            return await self.client.get(resource, meta["name"], meta["namespace"])
        except NotFound:
            return None

    async def _converge(
        self,
        website: Website,
        resource: Resource,
        desired: dict[str, Any],
        current: dict[str, Any] | None,
        done: list[tuple[str, str]],
    ) -> dict[str, Any]:
        """Create ``desired``, or server-side apply it onto ``current`` (a child we control) unless
        ``current`` already has every field we manage.

        A missing child is created, never applied: an apply would take over an object of that name
        created since our (cached) read. :class:`_TakenMeanwhile` says that happened.
        """
        if current is not None and covers(current, desired):
            return current
        meta = desired["metadata"]
        if current is None:
            created = desired
            if self.child_labels:  # at creation only, on the child's metadata (never the pod template)
                created = {**desired, "metadata": {**meta, "labels": {**meta["labels"], **self.child_labels}}}
            try:
                applied = await self.client.create(resource, created, field_manager=FIELD_MANAGER)
            except AlreadyExists:
                fresh = await self.client.api.get(resource, meta["name"], meta["namespace"])
                problem = not_controlled_by(fresh, str(website.metadata.uid), WEBSITES.kind)
                if problem is not None:
                    raise _TakenMeanwhile(problem) from None
                return fresh  # our own earlier create, not in the cache yet: converged next time
        else:
            applied = await self.client.patch(
                resource,
                meta["name"],
                desired,
                namespace=meta["namespace"],
                patch_type="apply",
                field_manager=FIELD_MANAGER,
                force=True,
            )
        verb = "created" if current is None else "updated"
        done.append((verb, f"{resource.kind} {meta['name']}"))
        _log.info(f"{verb} {resource.kind.lower()}", child=meta["name"])
        return applied

    async def _not_ready(self, website: Website, reason: str, message: str) -> None:
        """Ready=False with ``reason``; one Warning event per generation (not per retry or resync)."""
        generation = website.metadata.generation
        status = website.status
        status.observed_generation = generation
        changed = set_condition(
            status.conditions,
            type="Ready",
            status="False",
            reason=reason,
            message=message,
            observed_generation=generation,
            now=self.clock.now(),
        )
        await self._patch_status(website)
        if changed:
            self.events.event(website.to_object(), "Warning", reason, message)

    # --8<-- [start:status]
    async def _write_status(
        self,
        website: Website,
        deployment: Mapping[str, Any] | None,
        service: Mapping[str, Any] | None,
    ) -> None:
        generation = website.metadata.generation
        status = website.status
        ready, reason, message = readiness(website, deployment)
        set_condition(
            status.conditions,
            type="Ready",
            status=ready,
            reason=reason,
            message=message,
            observed_generation=generation,
            now=self.clock.now(),
        )
        status.observed_generation = generation
        status.available_replicas = int(
            ((deployment or {}).get("status") or {}).get("availableReplicas") or 0
        )
        status.cluster_ip, status.node_port, status.url = service_address(service)
        await self._patch_status(website)

    async def _patch_status(self, website: Website) -> None:
        """Merge-patch the status subresource when something in it changed since it was read.

        The resourceVersion read is a precondition (409 when stale): a late write from an ex-leader,
        or one based on an old cache, never replaces a newer status.
        """
        patch = website.status_patch()
        if patch:
            await self.client.patch(
                WEBSITES,
                website.metadata.name,
                patch,
                namespace=website.metadata.namespace,
                subresource="status",
                field_manager=FIELD_MANAGER,
            )

    # --8<-- [end:status]


class _TakenMeanwhile(Exception):
    """A child's create found the name taken; the message says by what."""


# -------------------------------------------------------------------------------------------- wiring


def website_controller(
    client: Client,
    events: EventSink,
    *,
    namespace: str | None = None,
    clock: Clock | None = None,
    max_concurrent_reconciles: int = 2,
    conflict_retry_seconds: float = 60.0,
    rollout_grace_seconds: float = 5.0,
    child_labels: Mapping[str, str] | None = None,
) -> Controller:
    """The Website controller, ready for ``manager.add`` (or ``Shard.add``).

    Websites are filtered with ``generation_changed``: status writes and label edits do not
    reconcile again (the children's own events and resyncs still do). Owned Deployments and
    Services enqueue their Website on every change, which is how drift is noticed.
    ``child_labels`` are put on the children's metadata when they are created (a shard labels its
    children with its shard, so its shard-selected cache sees them at once); they are not part of the
    desired state afterwards, so a Website that moves does not rewrite its children (the sharder
    relabels them).
    """
    return Controller(
        "website",
        for_=WEBSITES,
        reconciler=WebsiteReconciler(
            client,
            events,
            clock=clock,
            conflict_retry_seconds=conflict_retry_seconds,
            rollout_grace_seconds=rollout_grace_seconds,
            child_labels=child_labels,
        ),
        owns=[DEPLOYMENTS, SERVICES],
        predicates=[generation_changed()],
        max_concurrent_reconciles=max_concurrent_reconciles,
        namespace=namespace,
        clock=clock,
    )
