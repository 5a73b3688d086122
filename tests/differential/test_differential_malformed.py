"""Differential scenarios for bad input: malformed bodies, patch documents, query parameters, abuse.

Every answer here must be the real server's 4xx (same code and reason), never a 500.
"""

from __future__ import annotations

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._dsl import Req, Scenario, check

CMS = "/api/v1/namespaces/{ns}/configmaps"
CM = CMS + "/x"
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
YAML = "application/yaml"
EXISTING = Req("POST", CMS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, expect=201)

_BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
    "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
    "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
)

_CREATE_BODIES: list[tuple[str, bytes | str]] = [
    ("truncated JSON", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {'),
    ("a JSON array", b"[1, 2]"),
    ("a JSON string", b'"configmap"'),
    ("a JSON number", b"42"),
    ("JSON null", b"null"),
    ("invalid UTF-8", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "\xff\xfe"}}'),
    ("metadata as a list", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": []}'),
    ("metadata.name as a number", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 7}}'),
    (
        "labels as a list",
        b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": []}}',
    ),
    ("apiVersion as a number", b'{"apiVersion": 1, "kind": "ConfigMap", "metadata": {"name": "x"}}'),
    ("duplicate keys", b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "name": "y"}}'),
]

_PATCHES: list[tuple[str, str, bytes | str]] = [
    ("a merge patch that is a list", MERGE, b"[1]"),
    ("a merge patch that is truncated", MERGE, b'{"data": '),
    ("a merge patch setting metadata to a string", MERGE, b'{"metadata": "x"}'),
    ("a JSON patch that is an object", JSON_PATCH, b'{"op": "add"}'),
    ("a JSON patch op without path", JSON_PATCH, b'[{"op": "add", "value": 1}]'),
    ("a JSON patch with an unknown op", JSON_PATCH, b'[{"op": "frob", "path": "/data"}]'),
    ("a JSON patch removing a missing path", JSON_PATCH, b'[{"op": "remove", "path": "/data/nope"}]'),
    ("a failing JSON patch test op", JSON_PATCH, b'[{"op": "test", "path": "/kind", "value": "Pod"}]'),
    ("a strategic patch that is a list", STRATEGIC, b"[1]"),
    ("an empty apply body", APPLY, b""),
    ("an apply body that is a list", APPLY, b"- 1\n"),
    ("an apply body that is not YAML", APPLY, b"a: [\n"),
    ("an unknown patch content type", "application/x-frob", b"{}"),
]

_QUERIES: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
    ("limit that is not a number", "GET", (("limit", "abc"),)),
    ("negative limit", "GET", (("limit", "-1"),)),
    ("timeoutSeconds that is not a number", "GET", (("timeoutSeconds", "soon"),)),
    ("a garbage label selector", "GET", (("labelSelector", "a in (b"),)),
    ("a garbage field selector", "GET", (("fieldSelector", "metadata.name"),)),
    ("an unknown resourceVersionMatch", "GET", (("resourceVersionMatch", "Sometimes"),)),
    ("resourceVersionMatch without resourceVersion", "GET", (("resourceVersionMatch", "Exact"),)),
    ("an unknown parameter is ignored", "GET", (("frobnicate", "1"),)),
    ("a bad dryRun", "POST", (("dryRun", "Some"),)),
    ("a bad fieldValidation", "POST", (("fieldValidation", "Loose"),)),
    ("a bad propagationPolicy", "DELETE", (("propagationPolicy", "Sideways"),)),
    ("a gracePeriodSeconds that is not a number", "DELETE", (("gracePeriodSeconds", "x"),)),
]

_NEW_CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "y"}}

SCENARIOS = [
    *[Scenario(f"create with {what}", (Req("POST", CMS, body),)) for what, body in _CREATE_BODIES],
    Scenario(
        "create with a YAML body",
        (
            Req(
                "POST",
                CMS,
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}\n",
                content_type=YAML,
                compare=("message",),
            ),
        ),
    ),
    Scenario(
        "patch with a strategic patch with a bad directive on an absent map",
        (EXISTING, Req("PATCH", CM, b'{"data": {"$patch": "explode"}}', content_type=STRATEGIC)),
        differs="an unknown $patch directive is a 500 on the fake even where the real server ignores it",
    ),
    Scenario("create with a YAML alias bomb", (Req("POST", CMS, _BOMB, content_type=YAML),)),
    Scenario(
        "apply with a YAML alias bomb",
        (Req("PATCH", CM, _BOMB, query=(("fieldManager", "m"),), content_type=APPLY),),
    ),
    Scenario("create with an unknown content type", (Req("POST", CMS, b"{}", content_type="text/plain"),)),
    *[
        Scenario(
            f"patch with {what}",
            (EXISTING, Req("PATCH", CM, body, query=(("fieldManager", "m"),), content_type=ctype)),
        )
        for what, ctype, body in _PATCHES
    ],
    *[
        Scenario(
            f"query: {what}",
            (
                EXISTING,
                Req(
                    method,
                    CM if method == "DELETE" else CMS,
                    _NEW_CM if method == "POST" else None,
                    query=query,
                ),
            ),
        )
        for what, method, query in _QUERIES
    ],
    Scenario("a 2 MB object is refused", (Req("POST", CMS, {**_NEW_CM, "data": {"a": "v" * 2_000_000}}),)),
    Scenario("a path with an unknown resource", (Req("GET", "/api/v1/namespaces/{ns}/frobs"),)),
    Scenario("a path that is too deep", (Req("GET", CM + "/status/extra"),)),
    Scenario("an unknown subresource", (EXISTING, Req("GET", CM + "/status"))),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_malformed_input_scenario(
    scenario: Scenario, kube_pair: tuple[KubeTarget, KubeTarget | None]
) -> None:
    await check(scenario, kube_pair)
