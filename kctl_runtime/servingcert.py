"""The TLS context for an HTTPS endpoint the process serves (the manager's secure ``/metrics``).

Contract
--------
:func:`server_ssl_context` loads a certificate and key from a directory in the layout a
``kubernetes.io/tls`` Secret mounts (and cert-manager writes): ``tls.crt`` (the certificate, then
any intermediates) and ``tls.key``. The context accepts TLS 1.2 or later and asks no client
certificate. Problems -- a missing directory or file, a key that does not match the certificate --
raise :class:`ValueError` naming the files, at construction, so a misconfigured process fails at
start-up with one line rather than at the first scrape.

Not guaranteed: reloading a rotated certificate; the files are read once (restart the pod, as a
Secret update rolls a Deployment with a checksum annotation, or as cert-manager's users do).
Self-signed certificates are not generated: mount one.
"""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["CERT_FILE", "KEY_FILE", "server_ssl_context"]

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"


def server_ssl_context(cert_dir: str | Path, *, what: str = "metrics") -> ssl.SSLContext:
    """A server-side TLS context from ``cert_dir``/tls.crt and tls.key (module doc)."""
    folder = Path(cert_dir)
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    missing = [str(path) for path in (cert, key) if not path.is_file()]
    if missing:
        raise ValueError(
            f"{what} certificate: {' and '.join(missing)} not found (need {CERT_FILE}, {KEY_FILE})"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"{what} certificate: cannot load {cert} with {key}: {exc}") from None
    return context
