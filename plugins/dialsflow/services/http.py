"""HTTP plumbing shared by the service clients: retry policy, pooled sessions, and error
text for people.

Each client (DIALS, DBS, CAF, OMS) keeps its own notion of what an answer means; what they
share is how long to wait between tries (full jitter on an exponential ceiling, Retry-After
honoured), a keep-alive session whose adapter retries status codes and connection errors,
and one-line descriptions of what went wrong.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

#: Answers worth another try on every service.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries per request, first one included
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Full jitter on an exponential ceiling; Retry-After is a floor when given."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        wait = random.uniform(0, ceiling)
        return max(wait, retry_after) if retry_after is not None else wait


class JitterRetry(Retry):
    """urllib3 `Retry` whose backoff is `RetryPolicy.delay` (urllib3 1.26 has no jitter)."""

    def __init__(self, *args: Any, policy: RetryPolicy | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy or RetryPolicy()

    def new(self, **kw: Any) -> JitterRetry:
        clone = super().new(**kw)
        clone.policy = self.policy
        return clone

    def get_backoff_time(self) -> float:
        failures = len(list(takewhile(lambda x: x.redirect_location is None,
                                      reversed(self.history))))
        return self.policy.delay(failures) if failures else 0.0


def adapter_retry(policy: RetryPolicy,
                  status: frozenset[int] | tuple[int, ...] = RETRYABLE_STATUS) -> JitterRetry:
    """Status and connection retries for one GET. Refused connections get only a few
    tries: a wrong host or port should fail in seconds, not minutes."""
    budget = max(0, policy.attempts - 1)
    return JitterRetry(total=budget, connect=min(3, budget), read=budget, status=budget,
                       other=0, redirect=0, status_forcelist=frozenset(status),
                       allowed_methods=frozenset({"GET"}), raise_on_status=False,
                       respect_retry_after_header=True, policy=policy)


def retrying_session(policy: RetryPolicy, *, pool: int, verify: bool | str = True,
                     cert: tuple[str, str] | str | None = None,
                     status: frozenset[int] | tuple[int, ...] = RETRYABLE_STATUS,
                     ) -> requests.Session:
    """A keep-alive session whose adapter retries `status` answers and connection errors."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool,
                          max_retries=adapter_retry(policy, status))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.cert = cert
    return session


def retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def describe_error(exc: Exception) -> str:
    """What a requests exception means, in a few words."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken while reading the body (truncated response)"
    if isinstance(exc, requests.exceptions.RetryError):
        return "transient HTTP errors outlasted the retries"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "getaddrinfo" in text:
        return "unknown host name"
    if "reset" in text:
        return "connection reset by peer"
    return f"connection error ({type(exc).__name__})"


def short_body(body: bytes) -> str:
    """The start of an error body, on one line; HTML error pages are just named."""
    text = body[:300].decode("utf-8", "replace").strip()
    if text.startswith("<"):
        return "HTML error page"
    return " ".join(text.split()) or "empty body"
