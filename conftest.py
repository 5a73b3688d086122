"""Test configuration: the shipped pytest plugin provides the `kube` / `fake_kube` fixtures."""

pytest_plugins = ["kctl_runtime.testing.pytest_plugin"]
