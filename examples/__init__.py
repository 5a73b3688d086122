"""Example controllers built on kctl_runtime.

* :mod:`examples.website_controller` — a ``Website`` becomes an nginx + git-sync Deployment and a
  NodePort Service, owned by the Website (garbage-collected with it), drift repaired with
  server-side apply, readiness reported in status conditions.
* :mod:`examples.user_controller` — a ``User`` becomes a ServiceAccount and its token Secret in a
  per-group namespace; cleanup across namespaces goes through a finalizer.
* :mod:`examples.demo` — ``python -m examples.demo``: the Website controller against the embedded
  fake API server, printing a transcript.

Each controller folder stands alone (copy it to start your own): reconciler and desired-state
builders in ``controller.py``, command line in ``__main__.py``, CRD, manifests, Dockerfile, docs and
tests that run against both the fake API server and a real kube-apiserver.
"""
