"""The kctl_runtime test kit: one import place for what a controller's tests need.

Contract
--------
Everything here is public and stable for users testing their own controllers:

* the fake API server :class:`~kctl_runtime.testing.fakeapi.FakeApiServer` (with its
  :class:`~kctl_runtime.testing.fakeapi.FaultInjector`);
* :class:`~kctl_runtime.testing.target.KubeTarget`, the value of the ``kube`` / ``fake_kube``
  fixtures (for annotations);
* the helpers :func:`~kctl_runtime.testing.helpers.eventually`,
  :func:`~kctl_runtime.testing.helpers.unique_name`, :func:`~kctl_runtime.testing.helpers.install_crd`,
  :func:`~kctl_runtime.testing.helpers.crd_resource` and
  :func:`~kctl_runtime.testing.helpers.running_manager`;
* the seeded fault harness :mod:`kctl_runtime.testing.chaos` (imported on its own).

The fixtures themselves come from :mod:`kctl_runtime.testing.pytest_plugin`, which pytest loads
through kctl-runtime's ``pytest11`` entry point; the real control plane is
:mod:`kctl_runtime.testing.envtest`. Importing this package does not import pytest.
"""

from .fakeapi import FakeApiServer, FaultInjector
from .helpers import crd_resource, eventually, install_crd, running_manager, unique_name
from .target import KubeTarget

__all__ = [
    "FakeApiServer",
    "FaultInjector",
    "KubeTarget",
    "crd_resource",
    "eventually",
    "install_crd",
    "running_manager",
    "unique_name",
]
