"""The one error of the envtest package."""

from __future__ import annotations


class EnvtestUnavailable(RuntimeError):
    """The real control plane cannot be used here; the message says why in one line and what to do.

    Raised when binaries are missing, a certificate cannot be made, or a process fails to start or to
    become ready in time (then the message carries the tail of that process's log).
    """
