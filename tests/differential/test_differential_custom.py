"""Differential scenarios for custom resources: status writes against the schema, apply on status."""

from __future__ import annotations

import json

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._dsl import Req, Scenario, check

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
# A type error in a status merge patch makes the real server add a second cause (".status.replicas"
# from its managed-fields conversion); value errors give one cause on both. See the docs' table.
BOUNDED = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string"}, "replicas": {"type": "integer", "minimum": 0}},
        },
    },
}
# Go's regexp (what kube-apiserver matches patterns with): \s and \d are ASCII-only.
PATTERNED = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "url": {"type": "string", "pattern": r"^https://[^\s/]+(/[^\s]*)?$"},
                "code": {"type": "string", "pattern": r"^\d+$"},
            },
        },
    },
}
WIDGET = {"apiVersion": "{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}}
STATUS = "{crd}/w/status"
CRD = {"status": True, "scale": True}


def _apply_status(manager: str, phase: str, *, force: bool = False) -> Req:
    body = json.dumps(
        {"apiVersion": "{group}/v1", "kind": "Widget", "metadata": {"name": "w"}, "status": {"phase": phase}}
    )
    query = [("fieldManager", manager)] + ([("force", "true")] if force else [])
    return Req("PATCH", STATUS, body, query=tuple(query), content_type=APPLY, compare=("status", "@managers"))


SCENARIOS = [
    Scenario(
        "a custom resource status write is validated against the schema",
        (
            Req("POST", "{crd}", WIDGET, expect=201),
            Req("PATCH", STATUS, {"status": {"replicas": -1}}, content_type=MERGE, expect=422),
            Req("PUT", STATUS, {**WIDGET, "status": {"replicas": -1}}, expect=422, compare=("message",)),
            Req("PATCH", "{crd}/w", {"spec": {"size": 4}}, content_type=MERGE, expect=200, compare=("spec",)),
        ),
        crd={**CRD, "schema": BOUNDED},
    ),
    Scenario(
        "a custom resource status write is pruned against the schema",
        (
            Req("POST", "{crd}", WIDGET, expect=201),
            Req(
                "PATCH",
                STATUS,
                {"status": {"phase": "Ready", "bogus": 1}},
                content_type=MERGE,
                expect=200,
                compare=("status",),
            ),
            Req("GET", "{crd}/w", compare=("status", "spec")),
        ),
        crd=CRD,
    ),
    Scenario(
        "a main-resource write of a custom resource ignores status but still validates the spec",
        (
            Req(
                "POST", "{crd}", {**WIDGET, "status": {"phase": "Ignored"}}, expect=201, compare=("?status",)
            ),
            Req("PATCH", "{crd}/w", {"spec": {"size": 0}}, content_type=MERGE, expect=422),
        ),
        crd=CRD,
    ),
    Scenario(
        "server-side apply on a status subresource records the manager and conflicts",
        (
            Req("POST", "{crd}", WIDGET, expect=201),
            _apply_status("alpha", "One"),
            _apply_status("beta", "Two"),
            _apply_status("beta", "Two", force=True),
            Req("GET", "{crd}/w", compare=("status", "@managers")),
        ),
        crd=CRD,
    ),
    Scenario(
        "a pattern's \\s and \\d are ASCII: a non-breaking space and an Arabic-Indic digit are not",
        (
            Req("POST", "{crd}", {**WIDGET, "spec": {"url": "https://h/a\u00a0b"}}, expect=201),
            Req("PATCH", "{crd}/w", {"spec": {"url": "https://h/a b"}}, content_type=MERGE, expect=422),
            Req("PATCH", "{crd}/w", {"spec": {"code": "\u0661"}}, content_type=MERGE, expect=422),
            Req(
                "PATCH",
                "{crd}/w",
                {"spec": {"code": "42"}},
                content_type=MERGE,
                expect=200,
                compare=("spec",),
            ),
        ),
        crd={**CRD, "schema": PATTERNED},
    ),
    Scenario(
        "the scale subresource of a custom resource reads the configured paths",
        (
            Req("POST", "{crd}", {**WIDGET, "spec": {"size": 3, "replicas": 2}}, expect=201),
            Req("GET", "{crd}/w/scale", compare=("kind", "apiVersion", "spec", "status")),
            Req(
                "PATCH",
                "{crd}/w/scale",
                {"spec": {"replicas": 5}},
                query=(("fieldManager", "scaler"),),
                content_type=MERGE,
                expect=200,
            ),
            Req("GET", "{crd}/w", compare=("spec", "@managers")),
        ),
        crd=CRD,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_custom_resource_scenario(
    scenario: Scenario, kube_pair: tuple[KubeTarget, KubeTarget | None]
) -> None:
    await check(scenario, kube_pair)
