"""Authentication and authorization for an HTTP endpoint, delegated to the API server.

Contract
--------
:class:`AuthFilter` guards an aiohttp handler (the manager's ``/metrics`` when ``metrics_secure``)
the way controller-runtime's ``filters.WithAuthenticationAndAuthorization`` does:

1. **Authenticate**: the request must carry ``Authorization: Bearer <token>``; the token goes to the
   API server in a ``TokenReview`` (``authentication.k8s.io/v1``, the API server's default
   audiences). No token, or a token the review does not authenticate: **401**.
2. **Authorize**: the reviewed user (name, uid, groups, extra) goes to the API server in a
   ``SubjectAccessReview`` (``authorization.k8s.io/v1``) for the *non-resource URL* -- the request's
   path, verb the lowercased HTTP method (``get`` for a scrape). Not allowed: **403**.
3. Otherwise the wrapped handler answers.

Decisions are cached, keyed by a SHA-256 of the token and by (user, groups, path, verb), on the
injected clock: authentications for ``authn_ttl`` (60 s, successes and failures alike), allowed
decisions for ``allow_ttl`` (300 s), denials for ``deny_ttl`` (30 s) -- controller-runtime's
durations -- so a Prometheus scraping every 15 s costs the API server one review pair per few
minutes. The caches hold at most ``max_entries`` each (oldest dropped first). Raw tokens are never
stored or logged.

The API server needs to let the controller's identity create ``tokenreviews`` and
``subjectaccessreviews`` (the ``system:auth-delegator`` ClusterRole grants both); the scraper's
identity needs ``get`` on the ``nonResourceURLs`` ``/metrics``.

Errors: a review the API server refuses or cannot answer (RBAC missing, unreachable, timeout) is one
warning log line without a traceback and fails closed -- 401 if authentication failed, 403 if
authorization did -- and is not cached, so the next request asks again.

Not guaranteed: client-certificate authentication (controller-runtime accepts both; scrapers in a
cluster use service-account tokens), and the API server's ``audiences`` check against a specific
audience.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from aiohttp import web

from kctl_runtime._rest import request_json
from kctl_runtime.clock import Clock, SystemClock
from kctl_runtime.errors import CALL_FAILURES

__all__ = ["AuthFilter", "Decision", "UserInfo"]

_log = structlog.get_logger("kctl_runtime.authfilter")

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

K = TypeVar("K")
V = TypeVar("V")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class UserInfo:
    """Who a token belongs to, as the ``TokenReview`` said."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @classmethod
    def from_review(cls, user: Mapping[str, Any]) -> UserInfo:
        extra = user.get("extra") or {}
        return cls(
            username=str(user.get("username", "")),
            uid=str(user.get("uid", "")),
            groups=tuple(user.get("groups") or ()),
            extra=tuple(sorted((key, tuple(values or ())) for key, values in extra.items())),
        )


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: ``status`` 200 (let through), 401 or 403, and why."""

    status: int
    reason: str
    user: UserInfo | None = None

    @property
    def allowed(self) -> bool:
        return self.status == 200


class _TtlCache(Generic[K, V]):
    """A small expiring map on the injected clock; oldest entries go first when full."""

    def __init__(self, clock: Clock, max_entries: int) -> None:
        self._clock = clock
        self._max = max_entries
        self._entries: dict[K, tuple[float, V]] = {}

    def lookup(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` for a live entry, ``(False, None)`` otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock.monotonic() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: K, value: V, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries.pop(key, None)
        while len(self._entries) >= self._max:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (self._clock.monotonic() + ttl, value)


class AuthFilter:
    """Authenticate with ``TokenReview``, authorize with ``SubjectAccessReview`` (module doc).

    Args:
        api_client: the kubernetes-asyncio ``ApiClient`` the reviews are sent with.
        clock: time source for the decision caches (default: system clock).
        authn_ttl: seconds a token's review is reused (60, like controller-runtime).
        allow_ttl: seconds an allowed decision is reused (300).
        deny_ttl: seconds a denial is reused (30).
        max_entries: bound of each cache (1024).
        review_timeout: seconds one review may take before the request fails closed (10).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        clock: Clock | None = None,
        authn_ttl: float = 60.0,
        allow_ttl: float = 300.0,
        deny_ttl: float = 30.0,
        max_entries: int = 1024,
        review_timeout: float = 10.0,
    ) -> None:
        if min(authn_ttl, allow_ttl, deny_ttl) < 0:
            raise ValueError("cache TTLs must be >= 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if review_timeout <= 0:
            raise ValueError("review_timeout must be > 0")
        self.api_client = api_client
        self.clock: Clock = clock or SystemClock()
        self.authn_ttl = authn_ttl
        self.allow_ttl = allow_ttl
        self.deny_ttl = deny_ttl
        self.review_timeout = review_timeout
        self._tokens: _TtlCache[str, UserInfo | None] = _TtlCache(self.clock, max_entries)
        self._decisions: _TtlCache[tuple[UserInfo, str, str], str | None] = _TtlCache(self.clock, max_entries)
        self.reviews = 0
        """How many reviews (TokenReview + SubjectAccessReview) were sent; for tests and diagnostics."""

    async def decide(self, authorization: str | None, path: str, verb: str) -> Decision:
        """The decision for a request with this ``Authorization`` header, path and lowercase verb."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return Decision(401, "no bearer token")
        user = await self._authenticate(token)
        if user is None:
            return Decision(401, "the token was not authenticated")
        denied = await self._authorize(user, path, verb)
        if denied is not None:
            return Decision(403, denied, user)
        return Decision(200, "allowed", user)

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` behind the filter: 401/403 as plain text, else ``handler``'s answer."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            decision = await self.decide(
                request.headers.get("Authorization"), request.path, request.method.lower()
            )
            if decision.status == 401:
                return web.Response(status=401, text="Unauthorized\n", content_type="text/plain")
            if decision.status == 403:
                who = decision.user.username if decision.user else "?"
                return web.Response(
                    status=403,
                    text=f"Authorization denied for user {who}: {decision.reason}\n",
                    content_type="text/plain",
                )
            return await handler(request)

        return guarded

    async def _authenticate(self, token: str) -> UserInfo | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        found, cached = self._tokens.lookup(key)
        if found:
            return cached
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        try:
            self.reviews += 1
            answer = await request_json(
                self.api_client, "POST", TOKEN_REVIEWS, body=review, timeout=self.review_timeout
            )
        except CALL_FAILURES as exc:
            _log.warning("TokenReview failed; refusing the request", error=str(exc) or type(exc).__name__)
            return None
        status = (answer or {}).get("status") or {}
        user = UserInfo.from_review(status.get("user") or {}) if status.get("authenticated") else None
        self._tokens.put(key, user, self.authn_ttl)
        return user

    async def _authorize(self, user: UserInfo, path: str, verb: str) -> str | None:
        """``None`` when allowed, else the reason for the denial."""
        key = (user, path, verb)
        found, denial = self._decisions.lookup(key)
        if found:
            return denial
        spec: dict[str, Any] = {
            "user": user.username,
            "groups": list(user.groups),
            "nonResourceAttributes": {"path": path, "verb": verb},
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {key: list(values) for key, values in user.extra}
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
        try:
            self.reviews += 1
            answer = await request_json(
                self.api_client, "POST", SUBJECT_ACCESS_REVIEWS, body=review, timeout=self.review_timeout
            )
        except CALL_FAILURES as exc:
            _log.warning(
                "SubjectAccessReview failed; refusing the request",
                user=user.username,
                error=str(exc) or type(exc).__name__,
            )
            return "the authorization check failed"
        status = (answer or {}).get("status") or {}
        if status.get("allowed") and not status.get("denied"):
            self._decisions.put(key, None, self.allow_ttl)
            return None
        reason = str(status.get("reason") or f"not allowed to {verb} {path}")
        self._decisions.put(key, reason, self.deny_ttl)
        return reason
