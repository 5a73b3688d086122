"""The kctl_runtime test kit: a fake API server and pytest fixtures for testing controllers.

Contract
--------
Everything here is public and stable for users testing their own controllers:
:class:`~kctl_runtime.testing.fakeapi.FakeApiServer` (with its
:class:`~kctl_runtime.testing.fakeapi.FaultInjector`), the helpers :func:`install_crd` and
:func:`running_manager` (:mod:`kctl_runtime.testing.helpers`), and the pytest plugin
``kctl_runtime.testing.pytest_plugin`` providing the ``kube`` / ``fake_kube`` fixtures, and the
seeded fault harness :mod:`kctl_runtime.testing.chaos` (imported on its own).
"""

from .fakeapi import FakeApiServer, FaultInjector
from .helpers import crd_resource, install_crd, running_manager

__all__ = ["FakeApiServer", "FaultInjector", "crd_resource", "install_crd", "running_manager"]
