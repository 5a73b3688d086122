"""What the Website controller may do: ``manifests/rbac.yaml`` is generated from this declaration.

Reads follow from the controller (its informers: Websites, owned Deployments and Services); writes are
declared here, next to nothing else, and the recording-proxy test in ``tests/test_website_manifests.py``
checks them against the calls the controller really makes. Regenerate with
``python -m kctl_runtime rbac examples.website_controller.permissions:permissions`` (and
``--watch-namespace web`` for ``manifests-namespaced/rbac.yaml``, ``--sharded`` for
``manifests-sharded/rbac.yaml``).
"""

from __future__ import annotations

from examples.website_controller.controller import FIELD_MANAGER, WEBSITES, website_controller
from kctl_runtime.client import Client
from kctl_runtime.events import EventRecorder
from kctl_runtime.rbac import EVENT_RECORDER, Grant, Permissions
from kctl_runtime.resource import DEPLOYMENTS, SERVICES

__all__ = ["NAMESPACE", "WRITES", "permissions"]

NAMESPACE = "website-system"
"""Where the controller runs (its ServiceAccount and leader-election Lease)."""

WRITES = (
    Grant(WEBSITES, ("patch",), subresource="status"),  # status merge patch
    Grant(DEPLOYMENTS, ("create", "patch")),  # server-side apply (create: the first apply)
    Grant(SERVICES, ("create", "patch")),
    EVENT_RECORDER,
)
"""Every write the controller makes. It never deletes: the garbage collector removes the children."""


def permissions() -> Permissions:
    """The declaration ``python -m kctl_runtime rbac`` reads (the controller is built, never run)."""
    offline = Client(api_client=None)  # inspected only: no request is ever made through it
    controller = website_controller(offline, EventRecorder(None, component=FIELD_MANAGER))
    return Permissions(name=FIELD_MANAGER, namespace=NAMESPACE, controllers=[controller], grants=WRITES)
