"""Repository-wide test configuration.

The ``kube`` / ``fake_kube`` fixtures are NOT registered here: pytest loads
``kctl_runtime.testing.pytest_plugin`` through the package's ``pytest11`` entry point (``make venv``
installs it), as in any user's project. tests/test_pytest_plugin.py checks it is loaded exactly once.
"""

import os

from hypothesis import settings

# A user's project that tests run from elsewhere (tests/test_pytest_plugin.py), never in place.
collect_ignore = ["tests/user_project"]

# CI runs the property tests derandomized (the same examples every run, so a red CI is a regression,
# not a new draw) and without per-example deadlines (a shared 2-core machine stalls at random);
# local runs keep hypothesis' random exploration.
if os.environ.get("CI"):
    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    settings.load_profile("ci")
