"""Built-in resource types and the per-type behaviour the real control plane adds.

Contract
--------
:func:`builtin_types` lists the built-in resources the fake serves (core/v1, apps/v1, batch/v1
Jobs, coordination.k8s.io/v1, events.k8s.io/v1, apiextensions.k8s.io/v1, admissionregistration.k8s.io/v1
webhook configurations, certificates.k8s.io/v1 CertificateSigningRequests with their ``approval`` and
``status`` subresources -- see :mod:`.certificates`) with the discovery facts of
kube-apiserver 1.3x (verbs, short names, categories, subresources, scope).

:class:`Defaulter` applies what the real API server's registry strategies and defaulting do on
create: namespaces get ``spec.finalizers: [kubernetes]`` and ``status.phase: Active``; services get
a ``clusterIP`` from 10.0.0.0/16, the envtest range (``None`` stays headless), and NodePorts
for ``NodePort``/``LoadBalancer`` from the node-port range (default 30000-32767, like kube-apiserver's
``--service-node-port-range``), with kube-apiserver's errors: a requested port outside the range or
already taken is a 422 on ``spec.ports[i].nodePort``, a full range a 500 ``InternalError`` "failed to
allocate a nodePort: range is full"; deployments get their defaulted ``strategy``,
``replicas`` and ``revisionHistoryLimit``; pods get the container and pod-level defaults, the
``DefaultTolerationSeconds`` tolerations and ``status.qosClass``; jobs get their labels, selector
and defaults (:mod:`.jobs`). :func:`fold_string_data` merges a
Secret's ``stringData`` into ``data`` on every write. It is not a full defaulting implementation;
fields a controller is unlikely to read are left as sent.
"""

from __future__ import annotations

import base64
import ipaddress
import random
from typing import Any

from kctl_runtime.testing.portrange import DEFAULT_SERVICE_NODE_PORT_RANGE, PortRange, parse_port_range

from .discovery import PrinterColumn, ResourceType
from .errors import ApiError, invalid, status_body

__all__ = ["Defaulter", "builtin_types", "fold_string_data"]

_READ_ONLY = ("get", "list", "watch")
_NO_DELETE_COLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")


def _replicas_scale() -> dict[str, str]:
    """The scale subresource of the apps/v1 kinds with ``spec.replicas`` (Deployment, ReplicaSet)."""
    return {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }


def _col(name: str, path: str | None, type_: str = "string", priority: int = 0) -> PrinterColumn:
    return PrinterColumn(name=name, type=type_, json_path=path, priority=priority)


def _csr_columns() -> tuple[PrinterColumn, ...]:
    """kube-apiserver's CSR columns, with the (field documentation) descriptions it sends."""
    return (
        PrinterColumn("SignerName", json_path=".spec.signerName", description=_CSR_SIGNER_DOC),
        # (the real server describes Requestor with the request field's documentation)
        PrinterColumn("Requestor", json_path=".spec.username", description="Base64-encoded PKCS#10 CSR data"),
        PrinterColumn("RequestedDuration", json_path="@csrduration", description=_CSR_DURATION_DOC),
        PrinterColumn(
            "Condition",
            json_path="@csrcondition",
            description="Conditions applied to the request, such as approval or denial.",
        ),
    )


_CSR_SIGNER_DOC = (
    "Requested signer for the request. It is a qualified name in the form: `scope-hostname.io/name`. "
    "If empty, it will be defaulted:\n 1. If it's a kubelet client certificate, it is assigned\n"
    '    "kubernetes.io/kube-apiserver-client-kubelet".\n 2. If it\'s a kubelet serving certificate, '
    'it is assigned\n    "kubernetes.io/kubelet-serving".\n 3. Otherwise, it is assigned '
    '"kubernetes.io/legacy-unknown".\nDistribution of trust for signers happens out of band. You can '
    "select on this field using `spec.signerName`."
)
_CSR_DURATION_DOC = (
    "expirationSeconds is the requested duration of validity of the issued certificate. The "
    "certificate signer may issue a certificate with a different validity duration so a client must "
    "check the delta between the notBefore and and notAfter fields in the issued certificate to "
    "determine the actual duration.\n\nThe v1.22+ in-tree implementations of the well-known Kubernetes "
    "signers will honor this field as long as the requested duration is not greater than the maximum "
    "duration they will honor per the --cluster-signing-duration CLI flag to the Kubernetes controller "
    "manager.\n\nCertificate signers may not honor this field for various reasons:\n\n  1. Old signer "
    "that is unaware of the field (such as the in-tree\n     implementations prior to v1.22)\n  2. "
    "Signer whose configured maximum is shorter than the requested duration\n  3. Signer whose "
    "configured minimum is longer than the requested duration\n\nThe minimum valid value for "
    "expirationSeconds is 600, i.e. 10 minutes."
)


def builtin_types() -> list[ResourceType]:
    """Fresh descriptions of every built-in resource (callers may keep them)."""
    return [
        ResourceType(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            False,
            short_names=("ns",),
            status_subresource=True,
            verbs=_NO_DELETE_COLLECTION,
            return_deleted_object=True,
            printer_columns=(_col("Status", ".status.phase"),),
        ),
        ResourceType(
            "",
            "v1",
            "configmaps",
            "configmap",
            "ConfigMap",
            True,
            short_names=("cm",),
            printer_columns=(_col("Data", "#data", "integer"),),
        ),
        ResourceType(
            "",
            "v1",
            "secrets",
            "secret",
            "Secret",
            True,
            printer_columns=(_col("Type", ".type"), _col("Data", "#data", "integer")),
        ),
        ResourceType(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            True,
            short_names=("sa",),
            return_deleted_object=True,
            printer_columns=(),
        ),
        ResourceType(
            "",
            "v1",
            "services",
            "service",
            "Service",
            True,
            short_names=("svc",),
            categories=("all",),
            status_subresource=True,
            return_deleted_object=True,
            printer_columns=(
                _col("Type", ".spec.type"),
                _col("Cluster-IP", ".spec.clusterIP"),
                _col("External-IP", "@externalip"),
                _col("Port(s)", "@ports"),
                _col("Selector", "@selector", priority=1),
            ),
        ),
        ResourceType(
            "",
            "v1",
            "pods",
            "pod",
            "Pod",
            True,
            short_names=("po",),
            categories=("all",),
            status_subresource=True,
            return_deleted_object=True,
            printer_columns=(
                _col("Ready", "@ready"),
                _col("Status", ".status.phase"),
                _col("Restarts", "@restarts", "string"),
                _col("IP", ".status.podIP", priority=1),
                _col("Node", ".spec.nodeName", priority=1),
                _col("Nominated Node", ".status.nominatedNodeName", priority=1),
                _col("Readiness Gates", "@readinessgates", priority=1),
            ),
        ),
        ResourceType(
            "",
            "v1",
            "endpoints",
            "endpoints",
            "Endpoints",
            True,
            short_names=("ep",),
            printer_columns=(),
        ),
        ResourceType(
            "",
            "v1",
            "events",
            "event",
            "Event",
            True,
            short_names=("ev",),
            printer_columns=(
                _col("Type", ".type"),
                _col("Reason", ".reason"),
                _col("Object", "@involved"),
                _col("Message", ".message"),
            ),
        ),
        ResourceType(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=("all",),
            status_subresource=True,
            tracks_generation=True,
            scale_subresource=_replicas_scale(),
            printer_columns=(
                _col("Ready", "@deployready"),
                _col("Up-to-date", ".status.updatedReplicas", "integer"),
                _col("Available", ".status.availableReplicas", "integer"),
                _col("Containers", "@containers", priority=1),
                _col("Images", "@images", priority=1),
                _col("Selector", "@labelselector", priority=1),
            ),
        ),
        ResourceType(
            "apps",
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            True,
            short_names=("rs",),
            categories=("all",),
            status_subresource=True,
            tracks_generation=True,
            scale_subresource=_replicas_scale(),
            printer_columns=(
                _col("Desired", ".spec.replicas", "integer"),
                _col("Current", ".status.replicas", "integer"),
                _col("Ready", ".status.readyReplicas", "integer"),
            ),
        ),
        ResourceType(
            "batch",
            "v1",
            "jobs",
            "job",
            "Job",
            True,
            categories=("all",),
            status_subresource=True,
            tracks_generation=True,
            printer_columns=(
                _col("Status", "@jobstatus"),
                _col("Completions", "@completions"),
                _col("Duration", "@jobduration"),
                _col("Containers", "@containers", priority=1),
                _col("Images", "@images", priority=1),
                _col("Selector", "@labelselector", priority=1),
            ),
        ),
        ResourceType(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            True,
            printer_columns=(_col("Holder", ".spec.holderIdentity"),),
        ),
        ResourceType(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            True,
            short_names=("ev",),
            printer_columns=(_col("Reason", ".reason"), _col("Note", ".note")),
        ),
        ResourceType(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "validatingwebhookconfiguration",
            "ValidatingWebhookConfiguration",
            False,
            categories=("api-extensions",),
            printer_columns=(_col("Webhooks", "#webhooks", "integer"),),
        ),
        ResourceType(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "mutatingwebhookconfiguration",
            "MutatingWebhookConfiguration",
            False,
            categories=("api-extensions",),
            printer_columns=(_col("Webhooks", "#webhooks", "integer"),),
        ),
        ResourceType(
            "certificates.k8s.io",
            "v1",
            "certificatesigningrequests",
            "certificatesigningrequest",
            "CertificateSigningRequest",
            False,
            short_names=("csr",),
            status_subresource=True,
            subresources=("approval",),
            printer_columns=_csr_columns(),
        ),
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            status_subresource=True,
            tracks_generation=True,
            printer_columns=(_col("Created At", ".metadata.creationTimestamp", "date"),),
        ),
    ]


def fold_string_data(obj: dict[str, Any]) -> None:
    """Secrets: ``stringData`` is write-only; the server merges it into ``data`` (base64)."""
    string_data = obj.pop("stringData", None)
    if string_data:
        data = dict(obj.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data


def _pod_defaults(obj: dict[str, Any]) -> None:
    """The defaults (and DefaultTolerationSeconds admission) a real API server gives a new pod."""
    spec = obj.setdefault("spec", {})
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    tolerations = list(spec.get("tolerations") or ())
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    spec["tolerations"] = tolerations
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    containers = spec.get("containers") or ()
    resources = [c.get("resources") or {} for c in containers]
    qos = "BestEffort"
    if any(r.get("requests") or r.get("limits") for r in resources):
        guaranteed = all(
            r.get("limits", {}).get(k) and r.get("requests", {}).get(k, r["limits"][k]) == r["limits"][k]
            for r in resources
            for k in ("cpu", "memory")
        )
        qos = "Guaranteed" if guaranteed else "Burstable"
    obj["status"] = {"phase": "Pending", "qosClass": qos}


class Defaulter:
    """Create-time defaulting and allocation for built-in kinds."""

    def __init__(self, node_ports: PortRange | None = None) -> None:
        self._network = ipaddress.ip_network("10.0.0.0/16")
        self._next_ip = 1
        self._used_ips: set[str] = {"10.0.0.1"}
        self.node_ports = node_ports or parse_port_range(DEFAULT_SERVICE_NODE_PORT_RANGE)
        self._next_port = self.node_ports.base
        self._used_ports: set[int] = set()
        self._created_ips: list[str] = []
        self._created_ports: list[int] = []

    def undo_create(self) -> None:
        """Give back what the last :meth:`on_create` allocated (its create failed, or was a dry run)."""
        self._used_ips.difference_update(self._created_ips)
        self._used_ports.difference_update(self._created_ports)
        self._created_ips, self._created_ports = [], []

    def on_create(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        self._created_ips, self._created_ports = [], []
        if rt.custom:
            return
        if rt.plural == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.plural == "services":
            self._service(obj)
        elif rt.plural == "deployments":
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            )
        elif rt.plural == "secrets":
            obj.setdefault("type", "Opaque")
        elif rt.plural == "pods":
            _pod_defaults(obj)
        elif rt.group == "batch" and rt.plural == "jobs":
            from .jobs import default_job

            default_job(obj)
        elif rt.group == "admissionregistration.k8s.io":
            from .admission import default_webhook_configuration

            default_webhook_configuration(obj, mutating=rt.plural.startswith("mutating"))

    def _service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            ip = spec.get("clusterIP")
            if ip in (None, ""):
                ip = self._allocate_ip()
                self._created_ips.append(ip)
            elif ip != "None":
                if ip in self._used_ips:
                    raise ApiError(
                        status_body(
                            422,
                            "Invalid",
                            f'Service "{obj["metadata"].get("name", "")}" is invalid: spec.clusterIPs: '
                            f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                            "provided IP is already allocated",
                        )
                    )
                self._used_ips.add(ip)
                self._created_ips.append(ip)
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        for i, port in enumerate(spec.get("ports") or ()):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and "port" in port:
                port["targetPort"] = port["port"]
            if spec["type"] in ("NodePort", "LoadBalancer"):
                if not port.get("nodePort"):
                    try:
                        port["nodePort"] = self._allocate_port()
                    except ApiError:
                        self.undo_create()
                        raise
                    self._created_ports.append(port["nodePort"])
                elif int(port["nodePort"]) not in self._created_ports:
                    self._claim_port(obj, i, int(port["nodePort"]))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj.setdefault("status", {"loadBalancer": {}})

    def release(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        if rt.plural != "services" or rt.custom:
            return
        spec = obj.get("spec") or {}
        self._used_ips.discard(spec.get("clusterIP", ""))
        for port in spec.get("ports") or ():
            self._used_ports.discard(port.get("nodePort", 0))

    def _allocate_ip(self) -> str:
        """A free address at a random place in the range, as the real bitmap allocator picks."""
        size = self._network.num_addresses - 2
        self._next_ip = random.randrange(size)
        for _ in range(size):
            self._next_ip = self._next_ip % size + 1
            ip = str(self._network.network_address + self._next_ip)
            if ip not in self._used_ips:
                self._used_ips.add(ip)
                return ip
        raise ApiError(status_body(500, "InternalError", "range is full"))

    def _claim_port(self, obj: dict[str, Any], index: int, port: int) -> None:
        """Allocate a requested node port, or fail as kube-apiserver's allocator does (422 Invalid)."""
        if port not in self.node_ports:
            why = f"provided port is not in the valid range. The range of valid ports is {self.node_ports}"
        elif port in self._used_ports:
            why = "provided port is already allocated"
        else:
            self._used_ports.add(port)
            self._created_ports.append(port)
            return
        self.undo_create()
        field = f"spec.ports[{index}].nodePort"
        raise invalid(
            "Service",
            "",
            obj["metadata"].get("name", ""),
            [{"reason": "FieldValueInvalid", "message": f"Invalid value: {port}: {why}", "field": field}],
        )

    def _allocate_port(self) -> int:
        """The next free port of the range, or kube-apiserver's 500 when it is full."""
        base, size = self.node_ports.base, self.node_ports.size
        for _ in range(size):
            port = self._next_port
            self._next_port = base + (self._next_port - base + 1) % size
            if port not in self._used_ports:
                self._used_ports.add(port)
                return port
        cause = "failed to allocate a nodePort: range is full"
        raise ApiError(
            status_body(
                500,
                "InternalError",
                f"Internal error occurred: {cause}",
                details={"causes": [{"message": cause}]},
            )
        )
