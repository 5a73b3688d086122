"""The User API, declared once: this class is the CRD (``manifests/crd.yaml`` is generated from it).

A User becomes a ServiceAccount and its token Secret in the group's namespace kiamol-ch20-authn-GROUP.
The group must make a valid namespace name, so its length and shape are checked by the API server,
before the controller ever sees it. Regenerate the CRD with
``python -m kctl_runtime crd examples.user_controller.api:User``.
"""

from __future__ import annotations

from pydantic import Field

from kctl_runtime.customresource import (
    Conditions,
    CustomResource,
    Definition,
    Int64,
    Model,
    PrinterColumn,
)

__all__ = ["User", "UserSpec", "UserStatus"]


class UserSpec(Model):
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    """The user's e-mail address (recorded on the ServiceAccount)."""

    group: str = Field(min_length=1, max_length=45, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """The user's group; the account lives in namespace kiamol-ch20-authn-GROUP, so the group is a DNS
    label of at most 45 characters."""


class UserStatus(Model):
    observed_generation: Int64 | None = None
    namespace: str | None = None
    """The group namespace holding the account."""

    service_account: str | None = None
    """The ServiceAccount's name."""

    token_secret: str | None = None
    """The name of the Secret the token controller fills with the token."""

    conditions: Conditions = Field(default_factory=list)


class User(CustomResource):
    """A person who authenticates with a service-account token."""

    definition = Definition(
        group="ch20.kiamol.net",
        version="v1",
        kind="User",
        labels={"kiamol": "ch20", "app.kubernetes.io/part-of": "user-controller"},
        printer_columns=(
            PrinterColumn("Email", ".spec.email"),
            PrinterColumn("Group", ".spec.group"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status', priority=1),
            PrinterColumn("Namespace", ".status.namespace", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )

    spec: UserSpec
    status: UserStatus = Field(default_factory=UserStatus)
