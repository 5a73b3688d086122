"""Repository-wide test configuration.

The ``kube`` / ``fake_kube`` fixtures are NOT registered here: pytest loads
``kctl_runtime.testing.pytest_plugin`` through the package's ``pytest11`` entry point (``make venv``
installs it), as in any user's project. tests/test_pytest_plugin.py checks it is loaded exactly once.
"""

# A user's project that tests run from elsewhere (tests/test_pytest_plugin.py), never in place.
collect_ignore = ["tests/user_project"]
