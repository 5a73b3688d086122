"""A small language for differential scenarios: the same requests sent to the fake and a real server.

Contract
--------
A :class:`Scenario` is data: an optional CRD to create first, then a list of steps. A :class:`Req`
step is one HTTP request (method, path, body, query, headers); a :class:`Watch` step opens a watch and
takes a number of events. :func:`run` waits for the namespace's ``kube-root-ca.crt`` (so both tiers
start from the same namespace contents), then sends the steps in order to one :class:`KubeTarget` and returns
one :data:`Observation` per step: the status code, the ``Status`` reason and causes (``reason`` and
``field`` of each, sorted and de-duplicated -- the real server sometimes reports a cause twice), and
the response fields the step names in ``compare``. Observations of the two tiers must be equal.

Placeholders in paths, bodies and compared messages: ``{ns}`` (the test's namespace), ``{group}`` and
``{crd}`` (the CRD's group and its namespaced collection path); observations carry the placeholders
back instead of the per-tier values, so they compare equal across tiers.

A field in ``compare`` is a dotted path into the JSON body (``status.selector``), ``?path`` (whether
it is present), ``message`` (the Status message with placeholders restored), or one of the named
extractors in :data:`EXTRACTORS` (``@managers``: the ``(manager, operation, subresource)`` of each
``managedFields`` entry; ``@writers``: the same without kube-controller-manager's own writes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from kctl_runtime.testing.pytest_plugin import KubeTarget, eventually
from tests.conformance._support import Crd, create_crd, delete_crd, raw

Observation = dict[str, Any]

ABSENT = "<absent>"
#: no step may take longer (a hang is a finding, not a stuck test run)
STEP_TIMEOUT = 30.0
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


@dataclass(frozen=True)
class Req:
    """One request. ``body``: a JSON value (encoded here), ``str`` or ``bytes`` (sent verbatim)."""

    method: str
    path: str
    body: Any = None
    query: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    accept: str = "application/json"
    compare: tuple[str, ...] = ()
    #: the status code both tiers must answer (checked even when only the fake runs)
    expect: int | None = None


@dataclass(frozen=True)
class Watch:
    """Open a watch (``watch=true`` is added) and take ``events`` events within ``timeout`` seconds."""

    path: str
    query: tuple[tuple[str, str], ...] = ()
    accept: str = "application/json"
    events: int = 1
    compare: tuple[str, ...] = ("type", "object.kind", "object.apiVersion")
    timeout: float = 15.0


@dataclass(frozen=True)
class Scenario:
    """A named request sequence; ``crd`` holds :func:`create_crd` keyword arguments, if one is needed."""

    name: str
    steps: tuple[Req | Watch, ...]
    crd: dict[str, Any] | None = None
    #: requests that take seconds on a real server (too-large resourceVersion waits 3 s) are marked slow
    #: a known, documented difference (docs/testing/fake-api-server.md): the real tier must still
    #: answer differently, so the entry is removed once the fake is fixed
    differs: str = ""


def _managers(body: Any) -> Any:
    entries = ((body or {}).get("metadata") or {}).get("managedFields") or []
    return sorted((e.get("manager"), e.get("operation"), e.get("subresource", "")) for e in entries)


def _writers(body: Any) -> Any:
    """``@managers`` without kube-controller-manager (its status writes exist only where it runs)."""
    return [m for m in _managers(body) if m[0] != "kube-controller-manager"]


def _data_keys(body: Any) -> Any:
    return sorted(((body or {}).get("data") or {}).keys())


EXTRACTORS: dict[str, Callable[[Any], Any]] = {
    "@managers": _managers,
    "@writers": _writers,
    "@data-keys": _data_keys,
}


class _Context:
    def __init__(self, target: KubeTarget, crd: Crd | None) -> None:
        self.values = {"{ns}": target.namespace}
        if crd is not None:
            self.values["{group}"] = crd.group
            self.values["{crd}"] = crd.path(target.namespace)

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            for key, actual in self.values.items():
                value = value.replace(key, actual)
            return value
        if isinstance(value, bytes):
            for key, actual in self.values.items():
                value = value.replace(key.encode(), actual.encode())
            return value
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        return value

    def restore(self, value: Any) -> Any:
        if isinstance(value, str):
            # longest first: the CRD path contains the namespace
            for key, actual in sorted(self.values.items(), key=lambda kv: -len(kv[1])):
                value = value.replace(actual, key)
            return value
        if isinstance(value, dict):
            return {k: self.restore(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.restore(v) for v in value]
        return value


def dig(body: Any, path: str) -> Any:
    """The value at a dotted path, or :data:`ABSENT`."""
    cursor = body
    for part in path.split("."):
        if isinstance(cursor, dict) and part in cursor:
            cursor = cursor[part]
        elif isinstance(cursor, list) and part.isdigit() and int(part) < len(cursor):
            cursor = cursor[int(part)]
        else:
            return ABSENT
    return cursor


def _extract(body: Any, name: str) -> Any:
    if name in EXTRACTORS:
        return EXTRACTORS[name](body)
    if name.startswith("?"):
        return dig(body, name[1:]) is not ABSENT
    return dig(body, name)


def observe(code: int, body: Any, compare: tuple[str, ...], context: _Context) -> Observation:
    """What a client reads from one answer: code, Status reason and causes, and the named fields."""
    seen: Observation = {"code": code}
    if isinstance(body, dict) and body.get("kind") == "Status":
        seen["reason"] = body.get("reason", "")
        causes = ((body.get("details") or {}).get("causes")) or []
        seen["causes"] = sorted({(c.get("reason", ""), c.get("field", "")) for c in causes})
    elif not isinstance(body, dict):
        seen["body"] = "<not JSON>" if body else "<empty>"
    for name in compare:
        if name == "message":
            seen[name] = body.get("message", ABSENT) if isinstance(body, dict) else ABSENT
        else:
            seen[name] = _extract(body, name)
    return context.restore(seen)  # type: ignore[no-any-return]


def _encode(body: Any, content_type: str) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


async def _request(target: KubeTarget, step: Req, context: _Context) -> Observation:
    headers = {"Accept": step.accept, "Content-Type": step.content_type}
    data = _encode(context.fill(step.body), step.content_type)
    code, _, body = await raw(
        target.api_client,
        step.method,
        context.fill(step.path),
        query=[(k, context.fill(v)) for k, v in step.query],
        body=data if data is not None else b"",
        headers=headers,
    )
    return observe(code, body, step.compare, context)


async def _watch(target: KubeTarget, step: Watch, context: _Context) -> Observation:
    api = target.api_client
    query = [("watch", "true"), *((k, context.fill(v)) for k, v in step.query)]
    response = await api.call_api(
        context.fill(step.path),
        "GET",
        query_params=query,
        header_params={"Accept": step.accept},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    events: list[Any] = []
    try:
        with anyio.move_on_after(step.timeout):
            while len(events) < step.events:
                line = await response.content.readline()
                if not line:
                    break
                event = json.loads(line)
                events.append({name: dig(event, name) for name in step.compare})
    finally:
        response.close()
    return context.restore({"code": response.status, "events": events})  # type: ignore[no-any-return]


async def _namespace_settled(target: KubeTarget) -> None:
    """Wait for the namespace's ``kube-root-ca.crt``: kube-controller-manager publishes it a moment
    after the namespace exists (the fake at once), and lists and watches of ConfigMaps see it."""
    path = f"/api/v1/namespaces/{target.namespace}/configmaps/kube-root-ca.crt"

    async def published() -> bool:
        return (await raw(target.api_client, "GET", path))[0] == 200

    await eventually(published, timeout=STEP_TIMEOUT, message=f"{path} was never published")


async def run(target: KubeTarget, scenario: Scenario) -> list[Observation]:
    """Send every step of ``scenario`` to ``target``; one observation per step."""
    await _namespace_settled(target)
    crd = await create_crd(target, **scenario.crd) if scenario.crd is not None else None
    context = _Context(target, crd)
    seen: list[Observation] = []
    try:
        for step in scenario.steps:
            with anyio.fail_after(STEP_TIMEOUT, shield=False):
                if isinstance(step, Req):
                    seen.append(await _request(target, step, context))
                else:
                    seen.append(await _watch(target, step, context))
    finally:
        if crd is not None:
            await delete_crd(target, crd)
    return seen


def expectation_failures(scenario: Scenario, seen: list[Observation]) -> list[str]:
    """Steps whose code differs from the scenario's ``expect``."""
    return [
        f"step {i} {step.method} {step.path}: expected {step.expect}, got {obs}"
        for i, (step, obs) in enumerate(zip(scenario.steps, seen, strict=True))
        if isinstance(step, Req) and step.expect is not None and obs["code"] != step.expect
    ]


async def check(scenario: Scenario, pair: tuple[KubeTarget, KubeTarget | None]) -> None:
    """Run ``scenario`` on the fake (and the real server, when there is one) and compare the answers."""
    fake, real = pair
    fake_seen = await run(fake, scenario)
    failures = expectation_failures(scenario, fake_seen)
    if real is not None:
        real_seen = await run(real, scenario)
        failures += [f"real tier: {f}" for f in expectation_failures(scenario, real_seen)]
        mismatches = [
            f"step {index}: fake {mine} != real {theirs}"
            for index, (mine, theirs) in enumerate(zip(fake_seen, real_seen, strict=True))
            if mine != theirs
        ]
        if not scenario.differs:
            failures += mismatches
        elif not mismatches:
            failures.append(f"documented difference is gone ({scenario.differs}): drop it from the docs")
    assert not failures, f"{scenario.name}:\n" + "\n".join(failures)
