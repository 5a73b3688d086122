"""kctl-runtime: Kubernetes controllers in asyncio Python.

The public API is re-exported here; everything else is private. See ``docs/`` for the guide.
"""

from kctl_runtime.clock import Clock, FakeClock, SystemClock

__all__ = ["Clock", "FakeClock", "SystemClock"]
