"""The User controller: ``User`` custom resources become ServiceAccounts with token Secrets.

Run it with ``python -m examples.user_controller --kubeconfig PATH`` (see ``--help``); the
reconciler, the desired-state builders and the wiring into a manager are in
:mod:`examples.user_controller.controller`.
"""
