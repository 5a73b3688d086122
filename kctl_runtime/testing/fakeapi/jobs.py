"""batch/v1 Jobs: what kube-apiserver's Job registry strategy defaults and validates.

Contract
--------
:func:`default_job` runs on create, as the real strategy and defaulting do (checked against
kube-apiserver 1.36): the labels ``batch.kubernetes.io/controller-uid``,
``batch.kubernetes.io/job-name`` (and the legacy ``controller-uid`` / ``job-name``) on the Job and
its pod template, a ``spec.selector`` matching the controller-uid label (unless
``manualSelector: true``), ``completions`` / ``parallelism`` 1, ``backoffLimit`` 6,
``completionMode: NonIndexed``, ``manualSelector: false``, ``podReplacementPolicy:
TerminatingOrFailed``, ``suspend: false``, and the pod-template defaults (container
``imagePullPolicy``, ``terminationMessagePath`` / ``Policy``, ``resources``; pod ``dnsPolicy``,
``schedulerName``, ``securityContext``, ``terminationGracePeriodSeconds``).

:func:`validate_job` is the spec validation (422 ``Invalid`` causes, worded as the real server
words them): ``spec.template.spec.restartPolicy`` must be ``OnFailure`` or ``Never``, at least one
container, ``parallelism`` / ``completions`` / ``backoffLimit`` not negative; on update (after
defaulting the template again) ``spec.template``, ``spec.completions`` and ``spec.selector`` are
immutable.

:func:`validate_job_status` is the status validation of writes to ``jobs/status`` (the real server
has checked status transitions since 1.31): counters not negative, ``ready`` not above ``active``,
``succeeded`` / ``failed`` never decrease, ``Complete=True`` only with ``SuccessCriteriaMet=True``,
``Failed=True`` only with ``FailureTarget=True``, no ``active`` pods once finished,
``completionTime`` exactly when ``Complete=True``.

Not modelled: the Job controller. The fake creates no Pods for a Job and never writes a Job's
status; tests write ``jobs/status`` themselves (on the real tier, kube-controller-manager's Job
controller does, from the Pods it creates). Indexed completion, pod failure / success policies,
``managedBy`` and suspension transitions are not validated.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["default_job", "validate_job", "validate_job_status"]

_RESTART_POLICIES = ("OnFailure", "Never")
_COUNTERS = ("active", "succeeded", "failed", "ready", "terminating")


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "message": message, "field": field}


def _labels_for(obj: dict[str, Any]) -> dict[str, str]:
    meta = obj["metadata"]
    uid, name = str(meta["uid"]), str(meta["name"])
    return {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": uid,
        "job-name": name,
    }


def _template_defaults(spec: dict[str, Any]) -> None:
    for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        if not isinstance(container, dict):
            continue
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def default_job(obj: dict[str, Any]) -> None:
    """Create-time labels, selector and defaults of a Job (module doc); ``metadata.uid`` is set."""
    spec = obj.setdefault("spec", {})
    generated = _labels_for(obj)
    if not spec.get("manualSelector"):
        spec["manualSelector"] = False
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": obj["metadata"]["uid"]}}
        template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        template_meta["labels"] = {**(template_meta.get("labels") or {}), **generated}
    labels = obj["metadata"].get("labels")
    if not labels:  # the Job gets the template's labels only when it has none of its own
        obj["metadata"]["labels"] = dict((spec.get("template") or {}).get("metadata", {}).get("labels") or {})
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("suspend", False)
    _template_defaults(spec.setdefault("template", {}).setdefault("spec", {}))


def _go_value(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return orjson.dumps(value).decode()


def validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """The causes of a Job spec the real server refuses (``old`` is ``None`` on create).

    On update the pod template is defaulted first, as the real decoder defaults every write, so a
    body that omits a defaulted field does not count as a template change.
    """
    spec = obj.get("spec") or {}
    template_spec = (spec.get("template") or {}).get("spec")
    if old is not None and isinstance(template_spec, dict):
        _template_defaults(template_spec)
    causes: list[dict[str, str]] = []
    for key in ("parallelism", "completions", "backoffLimit"):
        value = spec.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    f"spec.{key}",
                    f"Invalid value: {value}: must be greater than or equal to 0",
                )
            )
    pod = (spec.get("template") or {}).get("spec") or {}
    if pod.get("restartPolicy") not in _RESTART_POLICIES:
        causes.append(
            _cause(
                "FieldValueRequired",
                "spec.template.spec.restartPolicy",
                'Required value: valid values: "OnFailure", "Never"',
            )
        )
    if not pod.get("containers"):
        causes.append(_cause("FieldValueRequired", "spec.template.spec.containers", "Required value"))
    if old is not None:
        old_spec = old.get("spec") or {}
        for key in ("template", "completions", "selector"):
            if spec.get(key) != old_spec.get(key):
                causes.append(
                    _cause(
                        "FieldValueInvalid",
                        f"spec.{key}",
                        f"Invalid value: {_go_value(spec.get(key))}: field is immutable",
                    )
                )
    return causes


def _condition(status: dict[str, Any], type_: str) -> bool:
    return any(
        isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def validate_job_status(obj: dict[str, Any], old: dict[str, Any]) -> list[dict[str, str]]:
    """The causes of a ``jobs/status`` write the real server refuses (module doc)."""
    status = obj.get("status") or {}
    old_status = old.get("status") or {}
    causes: list[dict[str, str]] = []

    def counter(key: str) -> int:
        value = status.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    for key in _COUNTERS:
        if counter(key) < 0:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    f"status.{key}",
                    f"Invalid value: {counter(key)}: must be greater than or equal to 0",
                )
            )
    complete, failed = _condition(status, "Complete"), _condition(status, "Failed")
    if complete and not _condition(status, "SuccessCriteriaMet"):
        causes.append(
            _cause(
                "FieldValueInvalid",
                "status.conditions",
                "Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true "
                "condition",
            )
        )
    if failed and not _condition(status, "FailureTarget"):
        causes.append(
            _cause(
                "FieldValueInvalid",
                "status.conditions",
                "Invalid value: cannot set Failed=True condition without the FailureTarget=true condition",
            )
        )
    if (complete or failed) and counter("active") > 0:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "status.active",
                f"Invalid value: {counter('active')}: active>0 is invalid for finished job",
            )
        )
    if counter("ready") > counter("active") and "ready" in status:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "status.ready",
                f"Invalid value: {counter('ready')}: cannot set more ready pods than active",
            )
        )
    for key in ("succeeded", "failed"):
        before = old_status.get(key) or 0
        if counter(key) < before:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    f"status.{key}",
                    f"Invalid value: {counter(key)}: cannot decrease the {key} counter",
                )
            )
    completion_time = status.get("completionTime")
    if completion_time and not complete:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "status.completionTime",
                f'Invalid value: "{completion_time}": cannot set completionTime when there is no '
                "Complete=True condition",
            )
        )
    if complete and not completion_time:
        causes.append(
            _cause(
                "FieldValueRequired",
                "status.completionTime",
                "Required value: completionTime is required for Complete jobs",
            )
        )
    return causes
