"""Kubeconfig files for the fake API server.

Contract
--------
:func:`write_kubeconfig` writes a kubeconfig with one cluster (``server: http://HOST:PORT``, no TLS),
one user without credentials and one current context named ``kctl-fake``, readable by kubectl and by
kubernetes-asyncio's ``config.load_kube_config``. The file is written atomically (temp file + rename)
and made private to the user (mode 0600).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

__all__ = ["CONTEXT", "kubeconfig_dict", "write_kubeconfig"]

CONTEXT = "kctl-fake"


def kubeconfig_dict(url: str, namespace: str = "default") -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": url}}],
        "users": [{"name": CONTEXT, "user": {}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace}}
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(path: Path, url: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(kubeconfig_dict(url), handle, sort_keys=False)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
