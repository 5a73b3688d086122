"""The Website API, declared once: this class is the CRD (``manifests/crd.yaml`` is generated from it).

The schema rejects what is obviously wrong (no URL, replicas out of range); the controller checks the
rest (https only, a valid git branch name) and reports it as ``Ready=False`` reason ``InvalidSpec``.
Regenerate the CRD with ``python -m kctl_runtime crd examples.website_controller.api:Website``.
"""

from __future__ import annotations

from pydantic import Field

from kctl_runtime.customresource import (
    Conditions,
    CustomResource,
    Definition,
    Int32,
    Int64,
    Model,
    PrinterColumn,
)

__all__ = ["Website", "WebsiteSpec", "WebsiteStatus"]


class WebsiteSpec(Model):
    git_repo: str = Field(min_length=1, max_length=2048, pattern=r"^(https?|git|ssh)://[^\s/]+(/[^\s]*)?$")
    """The repository to serve, as an http(s), git or ssh URL. The controller only clones https URLs (the
    pod has no credentials); others are reported as InvalidSpec."""

    branch: str = Field(default="main", min_length=1, max_length=255)
    """The branch to serve (a git ref name); checked by the controller."""

    replicas: Int32 = Field(default=1, ge=0, le=10)
    """How many nginx pods serve the site."""


class WebsiteStatus(Model):
    observed_generation: Int64 | None = None
    """The metadata.generation the status describes."""

    url: str | None = None
    """The in-cluster address of the site (http://CLUSTER-IP:80)."""

    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    node_port: Int32 | None = None
    available_replicas: Int32 | None = None
    conditions: Conditions = Field(default_factory=list)


class Website(CustomResource):
    """A static website served by nginx from a git repository."""

    definition = Definition(
        group="extensions.example.com",
        version="v1",
        kind="Website",
        short_names=("ws",),
        labels={"app.kubernetes.io/part-of": "website-controller"},
        printer_columns=(
            PrinterColumn("GitRepo", ".spec.gitRepo"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("URL", ".status.url", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )

    spec: WebsiteSpec
    status: WebsiteStatus = Field(default_factory=WebsiteStatus)
