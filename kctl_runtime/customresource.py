"""Custom resources declared as Python classes: one pydantic v2 model is the API's single source of truth.

Contract
--------
* A custom resource is a subclass of :class:`CustomResource` with a ``spec`` (and usually a ``status``)
  field whose types are :class:`Model` subclasses, and a ``definition`` class attribute
  (:class:`Definition`: group, version, kind, scope, names, printer columns, subresources). From it
  :mod:`kctl_runtime.crdgen` builds the ``apiextensions.k8s.io/v1`` CRD, and the class's ``resource``
  (a :class:`~kctl_runtime.resource.Resource`) is what informers, controllers and the client use.
* Field names are written in Python (``git_repo``); on the wire they are camelCase (``gitRepo``), the
  Kubernetes convention, through an alias generator. Construct models with either spelling.
* Schema features are declared with pydantic's own constraints (``Field(ge=..., pattern=...,
  description=...)``, defaults, ``Literal``/``Enum`` enums, attribute docstrings as descriptions) and
  the markers of this module used in ``Annotated[...]``: :data:`Int32`, :data:`Int64`,
  :data:`IntOrString`, :class:`PreserveUnknownFields`, :class:`ListType`, :class:`MapType`,
  :class:`Rule` (CEL ``x-kubernetes-validations``) and :class:`Extensions` (any other
  ``x-kubernetes-*`` key).
* Parsing is lossless: fields the model does not declare are kept (``extra="allow"``) and written
  back by :meth:`CustomResource.to_object`, so a read-modify-write through an older model never drops
  what a newer one wrote. :meth:`CustomResource.from_object` raises :class:`InvalidObject` (a
  :class:`~kctl_runtime.reconcile.TerminalError`: retrying cannot fix the object) naming every field
  that does not parse; a controller worker logs it in one line and goes on with other keys.
* Parsing happens at the edge (``client.get(Website, ...)``, or :meth:`CustomResource.from_object` on
  a dict the reconciler read); informer caches keep the dicts the API sent. Built-in kinds
  (Deployment, Service, ...) stay dicts.
* Typed status writes: change ``obj.status`` in place, then :meth:`CustomResource.status_patch`
  gives the smallest JSON merge patch from the status as :meth:`~CustomResource.from_object` read it
  to the status now (``{}`` when nothing changed, so a reconciler writes only when it must),
  conditional on the ``resourceVersion`` read. :func:`set_condition` is
  :func:`kctl_runtime.conditions.set_condition` for a list of :class:`Condition` models (same
  semantics: it delegates).
* An object that does not parse is the reconciler's to report: :func:`report_invalid` sets
  ``Ready=False`` (reason ``InvalidSpec``, or ``InvalidObject`` when bad fields are outside the
  spec) and records one Warning event, once per problem and generation, working on the dict.

Not supported (generation fails naming the field, see :mod:`kctl_runtime.crdgen`): recursive models,
unions other than ``X | None`` and ``int | str``, tuples, discriminated unions.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PrivateAttr,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from kctl_runtime import conditions as _conditions
from kctl_runtime.patch import diff_merge_patch
from kctl_runtime.reconcile import TerminalError
from kctl_runtime.resource import Resource

if TYPE_CHECKING:
    from kctl_runtime.client import Client

__all__ = [
    "Condition",
    "Conditions",
    "CustomResource",
    "Definition",
    "Extensions",
    "Format",
    "Int32",
    "Int64",
    "IntOrString",
    "InvalidObject",
    "ListType",
    "MapType",
    "Model",
    "ObjectMeta",
    "PreserveUnknownFields",
    "PrinterColumn",
    "Rule",
    "Scale",
    "WebhookConversion",
    "report_invalid",
    "set_condition",
]


# ------------------------------------------------------------------------------------- schema markers


@dataclass(frozen=True, eq=False)  # hashable by identity: used in Annotated[...]
class Extensions:
    """Extra OpenAPI keys for the annotated field's schema node, e.g. ``Extensions({"format": "int32"})``."""

    values: Mapping[str, Any]

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = dict(handler(core))
        for key, value in self.values.items():
            if key == "x-kubernetes-validations":
                schema[key] = [*schema.get(key, ()), *value]
            else:
                schema[key] = value
        return schema


def Format(name: str) -> Extensions:
    """The OpenAPI ``format`` of the field (``int32``, ``int64``, ``date-time``, ...)."""
    return Extensions({"format": name})


Int32 = Annotated[int, Format("int32")]
"""An integer sent as ``type: integer, format: int32`` (``replicas``, ports)."""

Int64 = Annotated[int, Format("int64")]
"""An integer sent as ``type: integer, format: int64`` (``observedGeneration``)."""

IntOrString = Annotated[int | str, Extensions({"x-kubernetes-int-or-string": True})]
"""``x-kubernetes-int-or-string``: a port number or name, ``25%`` or ``3``."""


@dataclass(frozen=True, eq=False)  # hashable by identity: used in Annotated[...]
class PreserveUnknownFields(Extensions):
    """``x-kubernetes-preserve-unknown-fields: true``: the server keeps fields the schema does not list.

    ``Any`` and ``dict[str, Any]`` fields get it without a marker.
    """

    values: Mapping[str, Any] = field(default_factory=lambda: {"x-kubernetes-preserve-unknown-fields": True})


@dataclass(frozen=True, eq=False)  # hashable by identity: used in Annotated[...]
class ListType(Extensions):
    """``x-kubernetes-list-type`` (``atomic``, ``set`` or ``map``) and, for ``map``, the item keys.

    ``conditions: Annotated[list[Condition], ListType("map", keys=("type",))]``.
    """

    values: Mapping[str, Any] = field(init=False)
    type: Literal["atomic", "set", "map"] = "atomic"
    keys: Sequence[str] = ()

    def __post_init__(self) -> None:
        if (self.type == "map") != bool(self.keys):
            raise ValueError("ListType: keys= are needed for, and only for, type='map'")
        values: dict[str, Any] = {"x-kubernetes-list-type": self.type}
        if self.keys:
            values["x-kubernetes-list-map-keys"] = list(self.keys)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True, eq=False)  # hashable by identity: used in Annotated[...]
class MapType(Extensions):
    """``x-kubernetes-map-type`` (``granular`` or ``atomic``) of an object field."""

    values: Mapping[str, Any] = field(init=False)
    type: Literal["granular", "atomic"] = "granular"

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", {"x-kubernetes-map-type": self.type})


@dataclass(frozen=True, eq=False)  # hashable by identity: used in Annotated[...]
class Rule(Extensions):
    """A CEL validation rule (``x-kubernetes-validations``) on the annotated field's node.

    ``spec: Annotated[Spec, Rule("self.min <= self.max", message="min must not exceed max")]``.
    ``old_self`` rules (transition rules) work as on the server. Several rules may be stacked.
    """

    values: Mapping[str, Any] = field(init=False)
    rule: str = ""
    message: str | None = None
    message_expression: str | None = None
    reason: str | None = None
    field_path: str | None = None

    def __post_init__(self) -> None:
        if not self.rule:
            raise ValueError("Rule needs a CEL expression")
        entry: dict[str, Any] = {"rule": self.rule}
        for key, value in (
            ("message", self.message),
            ("messageExpression", self.message_expression),
            ("reason", self.reason),
            ("fieldPath", self.field_path),
        ):
            if value is not None:
                entry[key] = value
        object.__setattr__(self, "values", {"x-kubernetes-validations": [entry]})


# ------------------------------------------------------------------------------------------- models


class Model(BaseModel):
    """Base for a custom resource's spec, status and nested objects.

    camelCase on the wire, either spelling in Python; attribute docstrings become descriptions;
    undeclared fields are kept and written back.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        use_attribute_docstrings=True,
        extra="allow",
    )


class ObjectMeta(Model):
    """The object metadata a reconciler reads most; every other metadata field is kept as extra."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None


class Condition(Model):
    """The observed state of one aspect of the object."""

    # metav1.Condition's fields, as kctl_runtime.conditions writes them; the docstring above is the
    # CRD's description. Use it as ``conditions: Conditions = Field(default_factory=list)``.

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    observed_generation: Int64 | None = None
    last_transition_time: Annotated[str, Format("date-time")] | None = None


Conditions = Annotated[list[Condition], ListType("map", keys=("type",))]
"""A list of :class:`Condition` merged by ``type`` (``x-kubernetes-list-type: map``)."""


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: _conditions.ConditionStatus | bool,
    reason: str,
    message: str = "",
    observed_generation: int | None = None,
    now: _dt.datetime,
) -> bool:
    """:func:`kctl_runtime.conditions.set_condition` on a list of :class:`Condition` models, in place.

    Same arguments, validation and semantics (``lastTransitionTime`` moves only when ``status``
    does; returns whether anything changed): it delegates, converting the condition of that ``type``
    (the first one) to a dict and back. A changed condition is replaced in the list by a new model.
    """
    index = next((i for i, c in enumerate(conditions) if c.type == type), len(conditions))
    if conditions[index:]:
        # the steady state -- the condition says this already -- without the round trip through
        # a dict (a third of a typed reconcile's extra cost); the arguments are checked all the same
        found = conditions[index]
        status_s = _conditions._validate_arguments(type, status, reason, message, observed_generation)
        if (
            found.status == status_s
            and found.last_transition_time
            and found.reason == reason
            and (found.message or "") == message
            and (observed_generation is None or found.observed_generation == observed_generation)
        ):
            return False
    raw = (
        [conditions[index].model_dump(mode="json", by_alias=True, exclude_none=True)]
        if conditions[index:]
        else []
    )
    changed = _conditions.set_condition(
        raw,
        type=type,
        status=status,
        reason=reason,
        message=message,
        observed_generation=observed_generation,
        now=now,
    )
    if changed:
        conditions[index : index + 1] = [Condition.model_validate(raw[0])]
    return changed


# ------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry: what ``kubectl get`` shows."""

    name: str
    json_path: str
    type: Literal["string", "integer", "number", "boolean", "date"] = "string"
    description: str | None = None
    format: str | None = None
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.format:
            out["format"] = self.format
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class Scale:
    """The ``scale`` subresource (for ``kubectl scale`` and the HorizontalPodAutoscaler)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"specReplicasPath": self.spec_replicas_path, "statusReplicasPath": self.status_replicas_path}
        if self.label_selector_path:
            out["labelSelectorPath"] = self.label_selector_path
        return out


@dataclass(frozen=True)
class WebhookConversion:
    """The CRD's conversion hook: kube-apiserver calls this webhook to convert between versions.

    Either ``url`` or ``service_name`` + ``service_namespace`` (+ ``service_path``/``service_port``).
    The server answering ``ConversionReview`` requests is the webhook runnable's job; this only
    declares where it is. ``ca_bundle`` is base64 PEM (cert-manager can inject it instead).
    """

    service_name: str | None = None
    service_namespace: str | None = None
    service_path: str | None = "/convert"
    service_port: int = 443
    url: str | None = None
    ca_bundle: str | None = None
    review_versions: Sequence[str] = ("v1",)

    def __post_init__(self) -> None:
        if (self.url is None) == (self.service_name is None or self.service_namespace is None):
            raise ValueError("WebhookConversion needs either url= or service_name= and service_namespace=")

    def to_dict(self) -> dict[str, Any]:
        client: dict[str, Any] = {}
        if self.url is not None:
            client["url"] = self.url
        else:
            service: dict[str, Any] = {
                "name": self.service_name,
                "namespace": self.service_namespace,
                "port": self.service_port,
            }
            if self.service_path:
                service["path"] = self.service_path
            client["service"] = service
        if self.ca_bundle:
            client["caBundle"] = self.ca_bundle
        return {
            "strategy": "Webhook",
            "webhook": {"clientConfig": client, "conversionReviewVersions": list(self.review_versions)},
        }


@dataclass(frozen=True)
class Definition:
    """What a :class:`CustomResource` declares about its API (the CRD's names, scope, version, columns).

    group, version, kind: required; ``plural`` defaults to ``kind.lower() + "s"``, ``singular`` to
    ``kind.lower()``. namespaced: ``True`` (the default) or cluster-scoped. storage: whether this
    version is the storage version (a single-version CRD's only version always is). served: ``True``.
    deprecated / deprecation_warning: mark an old version. status_subresource: ``None`` (default)
    means "if the class has a ``status`` field". scale: a :class:`Scale`, or ``None``. labels: on the
    CRD object. conversion: the :class:`WebhookConversion` of a multi-version CRD (declare it on any
    one version; ``None`` is the ``None`` strategy, which only rewrites ``apiVersion``).
    """

    group: str
    version: str
    kind: str
    plural: str | None = None
    singular: str | None = None
    namespaced: bool = True
    short_names: Sequence[str] = ()
    categories: Sequence[str] = ()
    printer_columns: Sequence[PrinterColumn] = ()
    status_subresource: bool | None = None
    scale: Scale | None = None
    served: bool = True
    storage: bool = False
    deprecated: bool = False
    deprecation_warning: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    conversion: WebhookConversion | None = None

    @property
    def plural_name(self) -> str:
        return self.plural or f"{self.kind.lower()}s"

    @property
    def singular_name(self) -> str:
        return self.singular or self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural_name}.{self.group}"

    def resource(self) -> Resource:
        return Resource(self.group, self.version, self.plural_name, self.kind, self.namespaced)


class InvalidObject(TerminalError):
    """An object from the API that does not parse into its model; ``problems`` names each bad field."""

    def __init__(self, kind: str, key: str, problems: Sequence[str]) -> None:
        self.kind = kind
        self.key = key
        self.problems = list(problems)
        super().__init__(f"{kind} {key} does not match its model: {'; '.join(self.problems)}")


def _problems(error: ValidationError) -> list[str]:
    out: list[str] = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "(object)"
        out.append(f"{where}: {item['msg']}")
    return out


class CustomResource(Model):
    """Base class of a custom resource declared in Python (module doc).

    Subclasses set ``definition = Definition(...)`` and declare ``spec`` (and ``status``) fields.
    ``resource`` is derived from the definition; ``api_version`` and ``kind`` default to it.
    """

    definition: ClassVar[Definition]
    resource: ClassVar[Resource]

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    # the ``status`` of the object from_object parsed (a reference, not a copy): status_patch's baseline
    _status_as_read: Any = PrivateAttr(default=None)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        definition = cls.__dict__.get("definition")
        if definition is None:
            return  # an abstract intermediate class
        if not isinstance(definition, Definition):
            raise TypeError(
                f"{cls.__name__}.definition must be a Definition, got {type(definition).__name__}"
            )
        cls.resource = definition.resource()

    def model_post_init(self, context: Any, /) -> None:
        resource = type(self).__dict__.get("resource") or getattr(type(self), "resource", None)
        if resource is not None:
            if not self.api_version:
                self.api_version = resource.api_version
            if not self.kind:
                self.kind = resource.kind

    @classmethod
    def kube_resource(cls) -> Resource:
        """The REST resource of this kind (what the client and the informers address)."""
        return cls.resource

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> Self:
        """Parse an object the API sent; raises :class:`InvalidObject` naming every bad field.

        The object's ``status`` is remembered (by reference: do not change ``obj`` afterwards) as
        the baseline of :meth:`status_patch`.
        """
        try:
            parsed = cls.model_validate(obj)
        except ValidationError as exc:
            meta = obj.get("metadata") if isinstance(obj, Mapping) else None
            meta = meta if isinstance(meta, Mapping) else {}
            key = (
                f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
            )
            raise InvalidObject(cls.resource.kind, key, _problems(exc)) from None
        parsed._status_as_read = obj.get("status")
        return parsed

    def status_patch(self) -> dict[str, Any]:
        """The JSON merge patch from the status as read to ``self.status`` now; ``{}`` when equal.

        The baseline is the ``status`` of the object :meth:`from_object` parsed (an object built in
        Python, or read without a status, has the status model's defaults as its baseline). Change
        ``self.status`` in place, then send the patch to the status subresource
        (``client.patch(Kind.resource, name, patch, namespace=ns, subresource="status")``). Only
        changed fields are sent (a field now ``None`` as ``null``, lists whole), with
        ``metadata.resourceVersion`` as a precondition: the write fails with 409 Conflict if the
        object changed since it was read.
        """
        status = getattr(self, "status", None)
        if not isinstance(status, BaseModel):
            raise TypeError(f"{type(self).__name__} has no status model")
        after = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if after == self._status_as_read:
            return {}  # the steady state: what the server holds already (no second parse and dump)
        # normalised through the model, so defaults the server never stored are no change
        baseline = type(status).model_validate(self._status_as_read or {})
        before = baseline.model_dump(mode="json", by_alias=True, exclude_none=True)
        changed = diff_merge_patch(before, after)
        if not changed:
            return {}
        patch: dict[str, Any] = {"status": changed}
        if self.metadata.resource_version:
            patch["metadata"] = {"resourceVersion": self.metadata.resource_version}
        return patch

    def to_object(self) -> dict[str, Any]:
        """The object as the API takes it: camelCase, holding what was read or set (defaults left unset
        are left to the server, which applies the same defaults from the CRD), without ``None``s."""
        out: dict[str, Any] = self.model_dump(
            mode="json", by_alias=True, exclude_unset=True, exclude_none=True
        )
        return out


# ------------------------------------------------------------------------------ reporting bad objects


class _EventSink(Protocol):
    def event(self, obj: Mapping[str, Any], type: str, reason: str, message: str) -> None: ...


async def report_invalid(
    client: Client,
    resource: Resource,
    obj: Mapping[str, Any],
    error: InvalidObject,
    *,
    events: _EventSink,
    now: _dt.datetime,
    field_manager: str | None = None,
    condition_type: str = "Ready",
) -> bool:
    """Report ``obj``, which :meth:`CustomResource.from_object` refused with ``error``, on the object.

    Sets ``condition_type`` (``Ready``) to ``False``, reason ``InvalidSpec`` when every bad field is
    in ``spec`` (``InvalidObject`` otherwise), message ``the KIND does not match its model: ...``,
    and ``status.observedGeneration``; records one Warning event with the same reason and message.
    There is no model to use, so it works on the dict: one JSON merge patch of the status
    subresource carrying only ``conditions`` and ``observedGeneration``, conditional on the
    ``resourceVersion`` read (a stale write gets 409 Conflict). Returns whether it reported.

    Once per problem and generation: when the condition already says exactly this for this
    generation, nothing is sent and it returns ``False`` (so the echo of its own status write, a
    resync or a restart reports nothing again). An object being deleted is not reported (``False``).
    The caller decides what follows; usually ``raise error`` (a
    :class:`~kctl_runtime.reconcile.TerminalError`: one log line, not retried until the object changes).
    """
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        return False
    in_spec = all(problem.startswith("spec.") for problem in error.problems)
    reason = "InvalidSpec" if in_spec else "InvalidObject"
    message = f"the {error.kind} does not match its model: {'; '.join(error.problems)}"
    status = obj.get("status")
    found = status.get("conditions") if isinstance(status, Mapping) else None
    current = [dict(c) for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []
    generation = meta.get("generation")
    changed = _conditions.set_condition(
        current,
        type=condition_type,
        status="False",
        reason=reason,
        message=message,
        observed_generation=generation,
        now=now,
    )
    if not changed:
        return False
    patch = _conditions.status_conditions_patch(
        current, resource_version=meta["resourceVersion"], observed_generation=generation
    )
    await client.patch(
        resource,
        meta["name"],
        patch,
        namespace=meta.get("namespace"),
        subresource="status",
        field_manager=field_manager,
    )
    events.event(obj, "Warning", reason, message)
    return True
