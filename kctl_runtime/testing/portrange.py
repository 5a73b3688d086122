"""The Service node-port range of the test kit's API servers: one parser, one environment variable.

Contract
--------
:func:`parse_port_range` reads a range the way kube-apiserver reads ``--service-node-port-range``
(``k8s.io/apimachinery/pkg/util/net.ParsePortRange``): ``LOW-HIGH``, ``LOW+OFFSET`` or a single
``PORT``, inclusive at both ends, within 1-65535. Anything else raises :class:`ValueError` naming the
value and what is wrong with it (kube-apiserver would refuse to start). The fake API server
(``FakeApiServer(service_node_port_range=...)``, ``--service-node-port-range``) and the real control
plane (``ControlPlane(service_node_port_range=...)``) both validate through it.

:data:`NODE_PORT_RANGE_ENV` (``KCTL_ENVTEST_NODE_PORT_RANGE``, named when only envtest honoured it)
sets the range of *both* tiers the test kit starts: the ``kube`` fixtures' fake API servers and the
real control plane of :meth:`ControlPlane.from_environment`, so the two tiers model the same
cluster. :func:`node_port_range_from_environment` reads it (validated), defaulting to Kubernetes'
own :data:`DEFAULT_SERVICE_NODE_PORT_RANGE` (2,768 ports: one NodePort Service each).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = [
    "DEFAULT_SERVICE_NODE_PORT_RANGE",
    "NODE_PORT_RANGE_ENV",
    "PortRange",
    "node_port_range_from_environment",
    "parse_port_range",
]

#: Kubernetes' default ``--service-node-port-range``.
DEFAULT_SERVICE_NODE_PORT_RANGE = "30000-32767"
#: The environment variable that sets the node-port range of the fake and the real tier.
NODE_PORT_RANGE_ENV = "KCTL_ENVTEST_NODE_PORT_RANGE"

_NUMBER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class PortRange:
    """Ports ``base`` to ``base + size - 1``; ``str()`` gives the ``LOW-HIGH`` form."""

    base: int
    size: int

    @property
    def last(self) -> int:
        return self.base + self.size - 1

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.base <= port <= self.last

    def __str__(self) -> str:
        return f"{self.base}-{self.last}"


def parse_port_range(value: str) -> PortRange:
    """``"30000-32767"``, ``"30000+2767"`` or ``"30000"`` as a :class:`PortRange`; :class:`ValueError`
    (with the value and the reason) for anything kube-apiserver would not start with."""
    text = value.strip()
    low_text, sep, high_text = text.partition("-") if "-" in text else text.partition("+")
    if not sep:
        high_text = low_text
    if not (_NUMBER.fullmatch(low_text) and _NUMBER.fullmatch(high_text)):
        raise ValueError(
            f"invalid service node-port range {value!r}: expected LOW-HIGH, LOW+OFFSET or PORT "
            "(e.g. 30000-32767)"
        )
    low = int(low_text)
    high = low + int(high_text) if sep == "+" else int(high_text)
    if low < 1 or high > 65535:
        raise ValueError(f"invalid service node-port range {value!r}: ports must be within 1-65535")
    if high < low:
        raise ValueError(
            f"invalid service node-port range {value!r}: end port cannot be less than start port"
        )
    return PortRange(low, high - low + 1)


def node_port_range_from_environment() -> PortRange:
    """``$KCTL_ENVTEST_NODE_PORT_RANGE`` parsed, or Kubernetes' default range when it is unset or empty."""
    raw = os.environ.get(NODE_PORT_RANGE_ENV, "").strip() or DEFAULT_SERVICE_NODE_PORT_RANGE
    try:
        return parse_port_range(raw)
    except ValueError as exc:
        raise ValueError(f"${NODE_PORT_RANGE_ENV}: {exc}") from None
