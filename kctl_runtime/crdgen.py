"""CRD generation: a structural ``apiextensions.k8s.io/v1`` CustomResourceDefinition from model classes.

Contract
--------
* :func:`structural_schema` turns a pydantic JSON Schema into a *structural* OpenAPI v3 schema as
  kube-apiserver requires it: every ``$ref`` inlined, ``X | None`` collapsed to ``X`` (the field is
  simply optional), ``int | str`` with :data:`~kctl_runtime.customresource.IntOrString` to
  ``x-kubernetes-int-or-string``, ``Any`` and ``dict[str, Any]`` to
  ``x-kubernetes-preserve-unknown-fields``, ``const`` to a one-value ``enum``, JSON-Schema-2020
  numeric ``exclusiveMinimum``/``exclusiveMaximum`` to OpenAPI v3's boolean form, and pydantic's
  ``title``\\ s and ``additionalProperties: true`` (from ``extra="allow"``) dropped. Root
  ``metadata`` is ``type: object`` only (the server owns its schema).
* Anything a structural schema cannot say raises :class:`StructuralSchemaError` naming the field
  path (``Website.spec.source``) and the reason: recursive models, other unions, tuples, arrays
  without ``items``, a node without a type.
* :func:`crd` builds the CRD from one class per version (all of one group and kind). The storage
  version is the one declaring ``storage=True`` (a single version always is); exactly one must.
  ``conversion`` comes from the :class:`~kctl_runtime.customresource.WebhookConversion` a version
  declares; the webhook server itself is not part of this module.
* :func:`crd_yaml` is the YAML text written to a file, deterministic (stable key order), with a
  header saying how it was generated; :func:`kctl_runtime.generated.assert_current` fails a test
  when the committed file differs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kctl_runtime.customresource import CustomResource, WebhookConversion
from kctl_runtime.generated import dump_yaml

__all__ = [
    "StructuralSchemaError",
    "crd",
    "crd_yaml",
    "structural_schema",
]

_DROP = frozenset({"title", "examples", "readOnly", "writeOnly", "deprecated", "$comment", "$schema"})
_ALLOWED = frozenset(
    {
        "type",
        "format",
        "description",
        "default",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "items",
        "properties",
        "additionalProperties",
        "required",
        "nullable",
    }
)
_NULL = {"type": "null"}


class StructuralSchemaError(ValueError):
    """A model that cannot be expressed as a structural schema; the message names the field."""


def _rewrap(description: str) -> str:
    """A docstring as a description: lines joined, paragraphs kept."""
    paragraphs = re.split(r"\n\s*\n", description.strip())
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


class _Converter:
    def __init__(self, defs: Mapping[str, Any]) -> None:
        self.defs = defs

    def fail(self, path: str, why: str) -> StructuralSchemaError:
        return StructuralSchemaError(f"{path}: {why}")

    def node(self, raw: Mapping[str, Any], path: str, refs: tuple[str, ...]) -> dict[str, Any]:
        node = dict(raw)
        ref = node.pop("$ref", None)
        if ref is not None:
            name = str(ref).rsplit("/", 1)[-1]
            if name in refs:
                raise self.fail(path, f"the model {name} contains itself; a structural schema cannot recurse")
            if name not in self.defs:
                raise self.fail(path, f"unresolvable reference {ref}")
            # the field's own keys (description, default, rules) win over the referenced model's
            merged = {**self.defs[name], **node}
            if "x-kubernetes-validations" in node and "x-kubernetes-validations" in self.defs[name]:
                merged["x-kubernetes-validations"] = [
                    *self.defs[name]["x-kubernetes-validations"],
                    *node["x-kubernetes-validations"],
                ]
            return self.node(merged, path, (*refs, name))
        all_of = node.pop("allOf", None)
        if all_of is not None:
            if len(all_of) != 1:
                raise self.fail(path, "allOf of several schemas is not supported")
            return self.node({**all_of[0], **node}, path, refs)
        for key in ("prefixItems", "discriminator", "not", "if", "patternProperties", "dependentRequired"):
            if key in node:
                raise self.fail(
                    path, f"{key!r} (a tuple, discriminated union or conditional) is not supported"
                )
        union = node.pop("anyOf", None) or node.pop("oneOf", None)
        if union is not None:
            return self.union(node, list(union), path, refs)
        if isinstance(node.get("type"), list):
            types = [t for t in node["type"] if t != "null"]
            if len(types) != 1:
                raise self.fail(path, f"a value of several types {types} is not supported")
            node["type"] = types[0]
        return self.typed(node, path, refs)

    def union(
        self, node: dict[str, Any], options: list[Any], path: str, refs: tuple[str, ...]
    ) -> dict[str, Any]:
        if node.get("x-kubernetes-int-or-string"):
            kinds = sorted(str(o.get("type")) for o in options if o != _NULL)
            if kinds != ["integer", "string"]:
                raise self.fail(path, f"IntOrString must annotate int | str, got {kinds}")
            return self.typed(node, path, refs)
        present = [o for o in options if o != _NULL]
        if len(present) != 1:
            shown = ", ".join(str(o.get("type") or o.get("$ref", "?")).rsplit("/", 1)[-1] for o in present)
            raise self.fail(
                path,
                f"a union of {shown} cannot be a structural schema (only X | None and IntOrString are)",
            )
        return self.node({**present[0], **node}, path, refs)

    def typed(self, node: dict[str, Any], path: str, refs: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lead = {"type": 0, "description": 1}  # readable YAML: these come first
        for key, value in sorted(node.items(), key=lambda kv: lead.get(kv[0], 2)):
            if key in _DROP:
                continue
            if key.startswith("x-kubernetes-"):
                out[key] = copy.deepcopy(value)
            elif key == "const":
                out["enum"] = [value]
            elif key in _ALLOWED:
                out[key] = copy.deepcopy(value)
            else:
                raise self.fail(path, f"the schema keyword {key!r} is not supported in a CRD")
        if isinstance(out.get("description"), str):
            out["description"] = _rewrap(out["description"])
        if "enum" in out:
            out["enum"] = [v for v in out["enum"] if v is not None]
        if out.get("default", 0) is None:
            del out["default"]
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = out.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[plain] = value
                out[bound] = True
        if out.get("x-kubernetes-int-or-string"):
            out.pop("type", None)
            return out
        kind = out.get("type")
        if kind is None:
            if set(out) - {"description", "default", "x-kubernetes-preserve-unknown-fields"}:
                raise self.fail(path, "the value has no type")
            out["x-kubernetes-preserve-unknown-fields"] = True  # Any
            return out
        if kind == "object":
            self.object(out, path, refs)
        elif kind == "array":
            items = out.get("items")
            if not isinstance(items, Mapping):
                raise self.fail(path, "a list needs one item type")
            out["items"] = self.node(items, f"{path}[*]", refs)
        return out

    def object(self, out: dict[str, Any], path: str, refs: tuple[str, ...]) -> None:
        properties = out.get("properties")
        extra = out.pop("additionalProperties", None)
        if properties is not None:
            out["properties"] = {
                name: self.node(prop, f"{path}.{name}", refs) for name, prop in properties.items()
            }
            if isinstance(extra, Mapping) and extra:
                raise self.fail(path, "an object with both named fields and a typed map is not structural")
            return  # extra=True (lossless models) or False: the server prunes undeclared fields
        if isinstance(extra, Mapping) and extra:
            out["additionalProperties"] = self.node(extra, f"{path}[*]", refs)
        elif not out.get("x-kubernetes-preserve-unknown-fields"):
            out["x-kubernetes-preserve-unknown-fields"] = True  # dict[str, Any]


def structural_schema(model: type[CustomResource]) -> dict[str, Any]:
    """The ``openAPIV3Schema`` of ``model``; raises :class:`StructuralSchemaError` naming the field."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    converter = _Converter(defs)
    properties = dict(schema.get("properties") or {})
    out: dict[str, Any] = {"type": "object"}
    if schema.get("description"):
        out["description"] = _rewrap(str(schema["description"]))
    props: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    for name, prop in properties.items():
        if name in props:
            continue
        props[name] = converter.node(prop, f"{model.__name__}.{name}", (model.__name__,))
    out["properties"] = props
    required = [r for r in schema.get("required") or () if r not in ("apiVersion", "kind", "metadata")]
    if required:
        out["required"] = required
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            out[key] = copy.deepcopy(value)
    return out


def _version(model: type[CustomResource], storage: bool) -> dict[str, Any]:
    d = model.definition
    entry: dict[str, Any] = {"name": d.version, "served": d.served, "storage": storage}
    if d.deprecated:
        entry["deprecated"] = True
        if d.deprecation_warning:
            entry["deprecationWarning"] = d.deprecation_warning
    subresources: dict[str, Any] = {}
    status = d.status_subresource if d.status_subresource is not None else "status" in model.model_fields
    if status:
        subresources["status"] = {}
    if d.scale is not None:
        subresources["scale"] = d.scale.to_dict()
    if subresources:
        entry["subresources"] = subresources
    if d.printer_columns:
        entry["additionalPrinterColumns"] = [c.to_dict() for c in d.printer_columns]
    entry["schema"] = {"openAPIV3Schema": structural_schema(model)}
    return entry


def crd(*models: type[CustomResource]) -> dict[str, Any]:
    """The CustomResourceDefinition serving ``models`` (one class per version; module doc)."""
    if not models:
        raise ValueError("crd() needs at least one CustomResource class")
    for model in models:
        if not (isinstance(model, type) and issubclass(model, CustomResource)) or "definition" not in vars(
            model
        ):
            raise TypeError(f"{model!r} is not a CustomResource class with a definition")
    first = models[0].definition
    same = ("group", "kind", "plural_name", "singular_name", "namespaced", "short_names", "categories")
    for model in models[1:]:
        for attr in same:
            if getattr(model.definition, attr) != getattr(first, attr):
                raise ValueError(f"{model.__name__}.definition.{attr} differs from {models[0].__name__}'s")
    versions = [m.definition.version for m in models]
    if len(set(versions)) != len(versions):
        raise ValueError(f"each version must appear once, got {versions}")
    storage = [m for m in models if m.definition.storage]
    if len(models) == 1:
        storage = list(models)
    if len(storage) != 1:
        raise ValueError(
            f"exactly one version must declare storage=True, got {[m.definition.version for m in storage]}"
        )
    conversions: list[WebhookConversion] = [
        m.definition.conversion for m in models if m.definition.conversion is not None
    ]
    if any(c != conversions[0] for c in conversions):
        raise ValueError("the versions declare different conversion webhooks")
    names: dict[str, Any] = {
        "kind": first.kind,
        "listKind": f"{first.kind}List",
        "plural": first.plural_name,
        "singular": first.singular_name,
    }
    if first.short_names:
        names["shortNames"] = list(first.short_names)
    if first.categories:
        names["categories"] = list(first.categories)
    metadata: dict[str, Any] = {"name": first.crd_name}
    labels = {k: v for m in models for k, v in m.definition.labels.items()}
    if labels:
        metadata["labels"] = labels
    spec: dict[str, Any] = {
        "group": first.group,
        "scope": "Namespaced" if first.namespaced else "Cluster",
        "names": names,
    }
    if conversions:
        spec["conversion"] = conversions[0].to_dict()
    spec["versions"] = [_version(m, m is storage[0]) for m in models]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": spec,
    }


def _header(models: Sequence[type[CustomResource]]) -> str:
    targets = " ".join(f"{m.__module__}:{m.__qualname__}" for m in models)
    return f"# Generated by `python -m kctl_runtime crd {targets}`: edit the classes, not this file.\n"


def crd_yaml(*models: type[CustomResource]) -> str:
    """:func:`crd` as YAML text with a header naming the command that generated it."""
    return _header(models) + dump_yaml([crd(*models)])
