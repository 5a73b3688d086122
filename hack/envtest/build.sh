#!/usr/bin/env bash
# The envtest build recipe lives in the package, so pip users have it as
# `python -m kctl_runtime.testing.envtest build`; this repository path runs that same script
# (no Python needed), with the same arguments (--help lists them).
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/kctl_runtime/testing/envtest/gobuild/build.sh" "$@"
