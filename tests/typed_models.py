"""Custom resource classes the typed-resource tests share: every schema feature the generator supports."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field

from kctl_runtime.customresource import (
    Conditions,
    CustomResource,
    Definition,
    Int32,
    Int64,
    IntOrString,
    ListType,
    MapType,
    Model,
    PreserveUnknownFields,
    PrinterColumn,
    Rule,
    Scale,
    WebhookConversion,
)

GROUP = "typed.kctl.example.com"


class Tier(StrEnum):
    FREE = "free"
    PAID = "paid"


class Port(Model):
    name: str = Field(min_length=1, max_length=15)
    port: IntOrString
    protocol: Literal["TCP", "UDP"] = "TCP"


class GadgetSpec(Model):
    """What a Gadget should be."""

    size: Int32 = Field(default=1, ge=1, le=5)
    """How big, from 1 to 5."""

    color: str = Field(default="blue", pattern=r"^[a-z]+$", max_length=20)
    tier: Tier = Tier.FREE
    ratio: float = Field(default=0.5, gt=0, lt=1)
    ports: Annotated[list[Port], ListType("map", keys=("name",))] = Field(default_factory=list, max_length=4)
    tags: Annotated[list[str], ListType("set")] = Field(default_factory=list)
    labels: Annotated[dict[str, str], MapType("granular")] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    """Free-form settings, kept as sent."""

    raw: Annotated[dict[str, Any], PreserveUnknownFields()] | None = None
    min_replicas: Int32 = 1
    max_replicas: Int32 = 3


class GadgetStatus(Model):
    replicas: Int32 = 0
    observed_generation: Int64 | None = None
    conditions: Conditions = Field(default_factory=list)


class Gadget(CustomResource):
    """A gadget, to test every schema feature."""

    definition = Definition(
        group=GROUP,
        version="v1",
        kind="Gadget",
        short_names=("gdg",),
        categories=("kctl-tests",),
        printer_columns=(
            PrinterColumn("Size", ".spec.size", type="integer"),
            PrinterColumn("Tier", ".spec.tier", priority=1),
        ),
        scale=Scale(spec_replicas_path=".spec.maxReplicas", status_replicas_path=".status.replicas"),
    )

    spec: Annotated[
        GadgetSpec,
        Rule("self.minReplicas <= self.maxReplicas", message="minReplicas must not exceed maxReplicas"),
    ]
    status: GadgetStatus = Field(default_factory=GadgetStatus)


class WidgetV1Spec(Model):
    size: int = 1


class WidgetV1(CustomResource):
    definition = Definition(
        group=GROUP,
        version="v1",
        kind="Widget",
        storage=True,
        namespaced=False,
        conversion=None,
    )
    spec: WidgetV1Spec = Field(default_factory=WidgetV1Spec)


class WidgetV1alpha1(CustomResource):
    definition = Definition(
        group=GROUP,
        version="v1alpha1",
        kind="Widget",
        namespaced=False,
        deprecated=True,
        deprecation_warning="use v1",
    )
    spec: WidgetV1Spec = Field(default_factory=WidgetV1Spec)


CONVERSION = WebhookConversion(service_name="widget-webhook", service_namespace="widget-system")
