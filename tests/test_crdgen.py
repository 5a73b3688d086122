"""CRD generation: structural schemas from the classes, accepted by kube-apiserver and the fake alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import Field

from kctl_runtime.client import Client
from kctl_runtime.crdgen import StructuralSchemaError, crd, structural_schema
from kctl_runtime.customresource import CustomResource, Definition, Model, ObjectMeta
from kctl_runtime.errors import Invalid
from kctl_runtime.testing.helpers import install_crd
from kctl_runtime.testing.pytest_plugin import KubeTarget, unique_name
from tests.typed_models import CONVERSION, GROUP, Gadget, GadgetSpec, WidgetV1, WidgetV1alpha1


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from _nodes(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _nodes(value)


def test_the_schema_has_no_refs_unions_or_titles_and_every_node_a_type() -> None:
    schema = structural_schema(Gadget)
    for node in _nodes(schema):
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"} & set(node), node
    spec = schema["properties"]["spec"]["properties"]
    for name, prop in spec.items():
        assert "type" in prop or prop.get("x-kubernetes-int-or-string"), name


def test_constraints_defaults_enums_and_descriptions_reach_the_schema() -> None:
    schema = structural_schema(Gadget)
    assert schema["description"] == "A gadget, to test every schema feature."
    assert schema["required"] == ["spec"]
    spec = schema["properties"]["spec"]
    assert spec["description"] == "What a Gadget should be."
    size = spec["properties"]["size"]
    assert (size["type"], size["format"], size["minimum"], size["maximum"], size["default"]) == (
        "integer",
        "int32",
        1,
        5,
        1,
    )
    assert size["description"] == "How big, from 1 to 5."
    assert spec["properties"]["color"]["pattern"] == "^[a-z]+$"
    assert spec["properties"]["tier"] == {"type": "string", "enum": ["free", "paid"], "default": "free"}
    # JSON Schema 2020's numeric exclusive bounds become OpenAPI v3's boolean form
    ratio = spec["properties"]["ratio"]
    assert (ratio["minimum"], ratio["exclusiveMinimum"], ratio["maximum"], ratio["exclusiveMaximum"]) == (
        0,
        True,
        1,
        True,
    )


def test_kubernetes_extensions_are_emitted_where_declared() -> None:
    spec = structural_schema(Gadget)["properties"]["spec"]
    props = spec["properties"]
    assert props["ports"]["x-kubernetes-list-type"] == "map"
    assert props["ports"]["x-kubernetes-list-map-keys"] == ["name"]
    assert props["ports"]["items"]["properties"]["port"] == {"x-kubernetes-int-or-string": True}
    assert props["tags"]["x-kubernetes-list-type"] == "set"
    assert props["labels"]["x-kubernetes-map-type"] == "granular"
    assert props["config"]["x-kubernetes-preserve-unknown-fields"] is True
    assert props["raw"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert spec["x-kubernetes-validations"] == [
        {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not exceed maxReplicas"}
    ]
    status = structural_schema(Gadget)["properties"]["status"]
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]


def test_the_crd_declares_names_scope_columns_and_subresources() -> None:
    out = crd(Gadget)
    assert out["metadata"]["name"] == f"gadgets.{GROUP}"
    assert out["spec"]["names"] == {
        "kind": "Gadget",
        "listKind": "GadgetList",
        "plural": "gadgets",
        "singular": "gadget",
        "shortNames": ["gdg"],
        "categories": ["kctl-tests"],
    }
    (version,) = out["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.maxReplicas"
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Size", "Tier"]


def test_multi_version_marks_exactly_the_declared_storage_version() -> None:
    out = crd(WidgetV1alpha1, WidgetV1)
    assert out["spec"]["scope"] == "Cluster"
    assert [(v["name"], v["storage"]) for v in out["spec"]["versions"]] == [("v1alpha1", False), ("v1", True)]
    assert out["spec"]["versions"][0]["deprecationWarning"] == "use v1"
    assert "conversion" not in out["spec"]


def test_a_conversion_webhook_is_declared_on_the_crd() -> None:
    class WidgetV2(CustomResource):
        definition = Definition(
            group=GROUP, version="v2", kind="Widget", namespaced=False, storage=True, conversion=CONVERSION
        )

    class OldWidget(CustomResource):
        definition = Definition(group=GROUP, version="v1", kind="Widget", namespaced=False)

    out = crd(OldWidget, WidgetV2)
    assert out["spec"]["conversion"] == {
        "strategy": "Webhook",
        "webhook": {
            "clientConfig": {
                "service": {
                    "name": "widget-webhook",
                    "namespace": "widget-system",
                    "port": 443,
                    "path": "/convert",
                }
            },
            "conversionReviewVersions": ["v1"],
        },
    }


def test_versions_must_agree_on_one_storage_version() -> None:
    class WidgetV2(CustomResource):
        definition = Definition(group=GROUP, version="v2", kind="Widget", namespaced=False, storage=True)

    with pytest.raises(ValueError, match="exactly one version must declare storage=True"):
        crd(WidgetV1, WidgetV2)
    with pytest.raises(ValueError, match="exactly one version must declare storage=True"):
        crd(WidgetV1alpha1, _unstored())
    with pytest.raises(ValueError, match="namespaced differs"):
        crd(WidgetV1, _namespaced_widget())


def _unstored() -> type[CustomResource]:
    class WidgetBeta(CustomResource):
        definition = Definition(group=GROUP, version="v1beta1", kind="Widget", namespaced=False)

    return WidgetBeta


def _namespaced_widget() -> type[CustomResource]:
    class WidgetNs(CustomResource):
        definition = Definition(group=GROUP, version="v2", kind="Widget")

    return WidgetNs


# ------------------------------------------------------------------------------ not structural: clear errors


class Tree(Model):
    children: list[Tree] = Field(default_factory=list)


class Forest(CustomResource):
    definition = Definition(group=GROUP, version="v1", kind="Forest")
    spec: Tree


class Either(Model):
    value: str | float = 1.0


class Choice(CustomResource):
    definition = Definition(group=GROUP, version="v1", kind="Choice")
    spec: Either


class Pair(Model):
    point: tuple[int, int] = (0, 0)


class Paired(CustomResource):
    definition = Definition(group=GROUP, version="v1", kind="Paired")
    spec: Pair


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Forest, r"Forest\.spec\.children\[\*\]: the model Tree contains itself"),
        (Choice, r"Choice\.spec\.value: a union of string, number cannot be a structural schema"),
        (Paired, r"Paired\.spec\.point: 'prefixItems'"),
    ],
)
def test_a_model_that_is_not_structural_fails_naming_the_field(
    model: type[CustomResource], message: str
) -> None:
    with pytest.raises(StructuralSchemaError, match=message):
        crd(model)


# ------------------------------------------------------------------------------ against an API server


def gadget(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


# (spec, the field paths of the 422's causes). Each is also checked on kube-apiserver.
INVALID: list[tuple[dict[str, Any], set[str]]] = [
    ({"size": 9}, {"spec.size"}),
    ({"size": "big"}, {"spec.size"}),
    ({"color": "Blue!"}, {"spec.color"}),
    ({"tier": "gold"}, {"spec.tier"}),
    ({"ratio": 1}, {"spec.ratio"}),
    ({"ports": [{"name": "http"}]}, {"spec.ports[0].port"}),
    ({"ports": [{"name": "http", "port": 80, "protocol": "SCTP"}]}, {"spec.ports[0].protocol"}),
    ({"tags": "a"}, {"spec.tags"}),
]


async def test_the_generated_crd_is_served_and_validates_like_the_model(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    resource = await install_crd(client, crd(Gadget))
    assert resource == Gadget.resource
    ns = kube.namespace
    created = await client.create(
        resource,
        gadget(
            "ok",
            ns,
            ports=[{"name": "http", "port": "web"}, {"name": "https", "port": 443}],
            config={"any": {"nested": [1, "two"]}},
            undeclared="pruned",
        ),
    )
    spec = created["spec"]
    # defaults applied by the server from the schema, unknown fields pruned, free-form kept
    assert (spec["size"], spec["color"], spec["tier"], spec["ratio"]) == (1, "blue", "free", 0.5)
    assert spec["ports"][0] == {"name": "http", "port": "web", "protocol": "TCP"}
    assert spec["config"] == {"any": {"nested": [1, "two"]}}
    assert "undeclared" not in spec
    parsed = Gadget.from_object(created)
    assert parsed.spec.ports[1].port == 443
    for index, (bad, fields) in enumerate(INVALID):
        with pytest.raises(Invalid) as caught:
            await client.create(resource, gadget(f"bad-{index}", ns, **bad))
        got = {c.get("field") for c in caught.value.causes}
        # kube-apiserver may add a field-less "<nil>" cause: the CEL rule on spec could not evaluate
        # an ill-typed spec (the fake does not run CEL)
        assert got - {"<nil>"} == fields, bad


@pytest.mark.real_only  # the fake does not evaluate CEL (kctl_runtime.testing.fakeapi.schema)
async def test_kube_apiserver_enforces_the_declared_cel_rule(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    resource = await install_crd(client, crd(Gadget))
    with pytest.raises(Invalid, match="minReplicas must not exceed maxReplicas"):
        await client.create(resource, gadget("cel", kube.namespace, minReplicas=4, maxReplicas=2))


async def test_a_multi_version_crd_serves_every_version_from_one_storage_version(kube: KubeTarget) -> None:
    client = Client(kube.api_client)
    v1 = await install_crd(client, crd(WidgetV1alpha1, WidgetV1))
    assert v1 == WidgetV1.resource
    name = unique_name("w")
    try:
        await client.create(WidgetV1alpha1, WidgetV1alpha1(metadata=ObjectMeta(name=name)))
        read = await client.get(WidgetV1, name)
        assert (read.api_version, read.spec.size) == (f"{GROUP}/v1", 1)
    finally:
        await client.delete(v1, name, ignore_not_found=True)


def test_structural_spec_models_can_be_built_in_python_with_either_spelling() -> None:
    assert GadgetSpec(min_replicas=2).min_replicas == 2
    assert GadgetSpec.model_validate({"minReplicas": 2}).min_replicas == 2
