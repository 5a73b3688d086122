"""Fuzzing the fake API server over HTTP: malformed bodies, paths, query parameters and patch documents.

The contract held here: every answer is a well-formed HTTP response within seconds, never a 5xx
other than the two 500s kube-apiserver itself gives (an unparsable ``resourceVersion`` parameter, a
``resourceVersion`` set on create), and the server's memory stays bounded. Examples and time are
bounded; the server runs on its own event loop in a thread so hypothesis can drive it synchronously
(plain ``http.client``, no monkeypatching).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kctl_runtime.testing.fakeapi import FakeApiServer

#: the 500s kube-apiserver gives too (checked by tests/differential)
REAL_SERVER_500S = ("resourceVersion should not be set on objects to be created", "strconv.ParseUint")


class _Served:
    """A FakeApiServer on a private event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = FakeApiServer()
        self._stop = asyncio.Event()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            async with self.server:
                self._ready.set()
                await self._stop.wait()

        self.loop.run_until_complete(main())
        self.loop.close()

    def __enter__(self) -> _Served:
        self.thread.start()
        assert self._ready.wait(10), "fake API server did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=15)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def served() -> Iterator[_Served]:
    with _Served() as served:
        status, _ = served.request(
            "POST",
            "/api/v1/namespaces",
            json.dumps({"metadata": {"name": "fuzz"}}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 201
        served.request(
            "POST",
            "/api/v1/namespaces/fuzz/configmaps",
            json.dumps({"metadata": {"name": "x"}, "data": {"a": "b"}}).encode(),
            {"Content-Type": "application/json"},
        )
        yield served


_PATHS = [
    "/api/v1/namespaces/fuzz/configmaps",
    "/api/v1/namespaces/fuzz/configmaps/x",
    "/api/v1/namespaces/fuzz/secrets",
    "/api/v1/namespaces/fuzz/pods",
    "/api/v1/namespaces/fuzz/services",
    "/api/v1/namespaces",
    "/api/v1/namespaces/fuzz",
    "/apis/apps/v1/namespaces/fuzz/deployments",
    "/apis/apps/v1/namespaces/fuzz/deployments/d/scale",
    "/apis/coordination.k8s.io/v1/namespaces/fuzz/leases",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "/apis",
    "/api",
    "/version",
]
_CONTENT_TYPES = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "",
]
_QUERY_KEYS = [
    "limit",
    "continue",
    "labelSelector",
    "fieldSelector",
    "fieldManager",
    "fieldValidation",
    "dryRun",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "resourceVersionMatch",
    "orphanDependents",
    "pretty",
    "frob",
]

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
_object_like = st.fixed_dictionaries(
    {},
    optional={
        "apiVersion": st.sampled_from(["v1", "apps/v1", "x/v1"]) | _json,
        "kind": st.sampled_from(["ConfigMap", "Secret", "Deployment", "Pod"]) | _json,
        "metadata": st.fixed_dictionaries(
            {}, optional={"name": st.sampled_from(["x", "y", "Bad_Name"]) | _json, "labels": _json}
        )
        | _json,
        "data": _json,
        "spec": _json,
        "status": _json,
    },
)
_patch_ops = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]) | _json,
            "path": st.sampled_from(["/data/a", "/metadata/labels", "/spec", "", "/~2"]) | _json,
            "from": st.sampled_from(["/data/a", "/metadata"]) | _json,
            "value": _json,
        },
    ),
    max_size=3,
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | _object_like.map(lambda v: json.dumps(v).encode())
    | _patch_ops.map(lambda v: json.dumps(v).encode())
)
_segment = st.text(alphabet="abcxyz-._~%/:", min_size=1, max_size=12)


def _rss_trace() -> int:
    current, _ = tracemalloc.get_traced_memory()
    return current


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
    path=st.sampled_from(_PATHS)
    | st.tuples(st.sampled_from(_PATHS), _segment).map(lambda t: t[0] + "/" + t[1]),
    query=st.dictionaries(st.sampled_from(_QUERY_KEYS), st.text(max_size=12), max_size=3),
    content_type=st.sampled_from(_CONTENT_TYPES),
    body=_bodies,
)
def test_malformed_requests_get_a_client_error_never_a_server_error(  # noqa: PLR0917 (hypothesis)
    served: _Served, method: str, path: str, query: dict[str, str], content_type: str, body: bytes
) -> None:
    target = quote(path, safe="/%:~") + ("?" + urlencode(query) if query else "")
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    status, answer = served.request(method, target, body, headers)
    assert 200 <= status < 500 or any(m.encode() in answer for m in REAL_SERVER_500S), (status, answer[:500])
    assert len(answer) < 5_000_000
    if status >= 400 and answer and not answer.startswith(b"404 page not found"):  # the real mux's text
        decoded: Any = json.loads(answer)
        assert decoded.get("kind") == "Status", decoded


def test_fuzzed_traffic_keeps_memory_bounded(served: _Served) -> None:
    """After a burst of bad writes (alias bombs included) the server holds no more than a few MB."""
    bomb = b'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n".encode() for i in range(8)
    )
    tracemalloc.start()
    try:
        before = _rss_trace()
        for _ in range(20):
            status, _answer = served.request(
                "PATCH",
                "/api/v1/namespaces/fuzz/configmaps/x?fieldManager=m",
                bomb,
                {"Content-Type": "application/apply-patch+yaml"},
            )
            assert status == 400
            status, _answer = served.request(
                "POST", "/api/v1/namespaces/fuzz/configmaps", bomb, {"Content-Type": "application/yaml"}
            )
            assert status == 400
        assert _rss_trace() - before < 20_000_000
    finally:
        tracemalloc.stop()
