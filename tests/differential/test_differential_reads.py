"""Differential scenarios for reads: metadata-only watches and their bookmarks, list error details."""

from __future__ import annotations

import pytest

from kctl_runtime.testing.pytest_plugin import KubeTarget

from ._dsl import METADATA_ONLY, Req, Scenario, Watch, check

CMS = "/api/v1/namespaces/{ns}/configmaps"
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}
STREAMING = (
    ("sendInitialEvents", "true"),
    ("allowWatchBookmarks", "true"),
    ("resourceVersionMatch", "NotOlderThan"),
)
METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
EVENT = ("type", "object.kind", "object.apiVersion", "object.metadata.annotations")

SCENARIOS = [
    Scenario(
        "a metadata-only streaming watch sends metadata-only events and bookmark",
        (
            Req("POST", CMS, CM, expect=201),
            Watch(CMS, (*STREAMING, ("resourceVersion", "")), accept=METADATA_ONLY, events=3, compare=EVENT),
        ),
    ),
    Scenario(
        "a full streaming watch sends the kind's bookmark",
        (
            Req("POST", CMS, CM, expect=201),
            Watch(CMS, (*STREAMING, ("resourceVersion", "")), events=3, compare=EVENT),
        ),
    ),
    Scenario(
        "a metadata-only list and get",
        (
            Req("POST", CMS, CM, expect=201),
            Req(
                "GET",
                CMS,
                accept=METADATA_LIST,
                compare=("kind", "apiVersion", "items.0.kind", "?items.0.data"),
            ),
            Req("GET", CMS + "/x", accept=METADATA_ONLY, compare=("kind", "apiVersion", "?data")),
        ),
    ),
    Scenario(
        "a list from a too-large resourceVersion waits, then names the cause",
        (
            Req(
                "GET",
                CMS,
                query=(("resourceVersion", "999999999"), ("resourceVersionMatch", "NotOlderThan")),
                compare=("details.retryAfterSeconds",),
            ),
        ),
    ),
    Scenario(
        "a malformed continue token is a 400",
        (Req("GET", CMS, query=(("limit", "1"), ("continue", "bm90IGEgdG9rZW4")), expect=400),),
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_read_scenario(scenario: Scenario, kube_pair: tuple[KubeTarget, KubeTarget | None]) -> None:
    await check(scenario, kube_pair)
