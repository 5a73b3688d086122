"""What the User controllers may do: ``manifests/rbac.yaml`` is generated from this declaration.

Reads follow from the controllers (Users, group Namespaces, ServiceAccounts); writes are declared
here, and the recording-proxy test in ``tests/test_user_manifests.py`` checks them against the calls
the controllers really make. Secrets are written but never read: no informer watches them, so no
``get``/``list``/``watch`` is generated. Regenerate with
``python -m kctl_runtime rbac examples.user_controller.permissions:permissions``.
"""

from __future__ import annotations

from examples.user_controller.controller import FIELD_MANAGER, USERS, user_controllers
from kctl_runtime.client import Client
from kctl_runtime.events import EventRecorder
from kctl_runtime.rbac import EVENT_RECORDER, Grant, Permissions
from kctl_runtime.resource import NAMESPACES, SECRETS, SERVICEACCOUNTS

__all__ = ["NAMESPACE", "WRITES", "permissions"]

NAMESPACE = "user-system"
"""Where the controller runs (its ServiceAccount and leader-election Lease)."""

WRITES = (
    Grant(USERS, ("patch",)),  # the cleanup finalizer, added and removed by JSON patch
    Grant(USERS, ("patch",), subresource="status"),
    Grant(NAMESPACES, ("create", "delete")),  # group namespaces, deleted when empty
    Grant(SERVICEACCOUNTS, ("create", "patch", "delete")),
    Grant(SECRETS, ("create", "patch", "delete")),  # token Secrets: written, never read
    EVENT_RECORDER,
)
"""Every write the controllers make."""


def permissions() -> Permissions:
    """The declaration ``python -m kctl_runtime rbac`` reads (the controllers are built, never run)."""
    offline = Client(api_client=None)  # inspected only: no request is ever made through it
    controllers = user_controllers(offline, None, EventRecorder(None, component=FIELD_MANAGER))
    return Permissions(name=FIELD_MANAGER, namespace=NAMESPACE, controllers=controllers, grants=WRITES)
