"""The Website controller: ``Website`` custom resources served by nginx from a git repository.

Run it with ``python -m examples.website_controller --kubeconfig PATH`` (see ``--help``); the
reconciler, the desired-state builders and the wiring into a manager are in
:mod:`examples.website_controller.controller`.
"""
