"""HTTP plumbing shared by the service clients: one retry mechanism, pooled sessions, and
error text for people.

Every GET of every client (DIALS, DBS, CAF, OMS) goes through a `Retrier.call(send,
classify, what)`. The client says only what an answer means for its service, with a
classifier `Response -> Outcome`: `ok(value)`, `retry(cause, retry_after)`,
`too_slow(cause, retry_after)` or `fail(message)`. The rest is here and the same for all
four:

- connection errors, timeouts and bodies cut short (ChunkedEncodingError,
  ContentDecodingError, fewer bytes on the wire than Content-Length announced, counted
  before any decompression) are retried;
- an answer saying the request took too long (a 504 from a gateway, a read timeout) is
  retried like any transient cause, unless the caller can ask for less: with
  `call(..., shrink=True)` it raises `TooSlow` at once, and the caller asks again for a
  smaller piece (DIALS pages, where a page slower than the server's limit is a 504 every
  time). Whoever gives up on such a cause raises `TooSlow` too (a `ServiceError`);
- waits are full jitter on an exponential ceiling, with Retry-After as a floor;
- one budget per call (`RetryPolicy.attempts`, every cause counted), then one line:
  "<what>: gave up after N attempts, last cause: ...";
- a connection that cannot be made at all (refused, unknown host, connect timeout) gets only
  `connect_attempts` tries while the service has never answered this client: a wrong host
  or port fails in seconds, a service restarting in the middle of a night is waited for.
  Giving up on such a cause raises `Unreachable`, so callers can name the connection.

This is the only layer of retries: the adapters of the sessions retry nothing (urllib3's
own retries would multiply with these, and urllib3 1.26 has no jitter), and omsapi's are
switched off.

`RETRYABLE_STATUS` is one set for every service: 429 (rate limited, with Retry-After) and
502/503/504 (a gateway or the service itself saying "not now"), the statuses that mean
"transient" whatever answers them; `by_status` calls a 504 too slow (see above). 500 is
not in it: DIALS (Django) and DBS (dbs2go, with an error body) answer 500 for a request
that will fail again, and retrying would only delay the failure and hide the body. Where
a service is known to send transient 500s, its classifier says so: OMS (forced 500s,
docs/reference/oms.md §5) and EOS web behind CAF, which also answers 403 now and then.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Generic, Self, TypeVar, cast

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from dialsflow.errors import ServiceError

#: Answers worth another try on every service (see the module docstring for 500).
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})

T = TypeVar("T")

#: Failures below HTTP: retried like a retryable status.
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries per request, first one included
    base_delay: float = 0.5
    max_delay: float = 30.0
    connect_attempts: int = 4  # tries when no connection can be made (module docstring)

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Full jitter on an exponential ceiling; Retry-After is a floor when given."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failures - 1))
        wait = random.uniform(0, ceiling)
        return max(wait, retry_after) if retry_after is not None else wait


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one answer means: build it with `ok`, `retry` or `fail`."""

    value: T | None = None
    cause: str | None = None  # set: worth another try, for this reason
    message: str | None = None  # set: final, this is the error for people
    retry_after: float | None = None
    slow: bool = False  # with `cause`: the request took too long (asking for less may help)


def ok(value: T) -> Outcome[T]:
    return Outcome(value=value)


def retry(cause: str, retry_after: float | None = None) -> Outcome[Any]:
    return Outcome(cause=cause, retry_after=retry_after)


def too_slow(cause: str, retry_after: float | None = None) -> Outcome[Any]:
    """Worth another try, but a smaller request may be what it takes (module docstring)."""
    return Outcome(cause=cause, retry_after=retry_after, slow=True)


def fail(message: str) -> Outcome[Any]:
    return Outcome(message=message)


def by_status(response: requests.Response, message: str) -> Outcome[Any]:
    """The shared rule for an answer the service's classifier has no opinion on: a
    retryable status is worth another try (honouring Retry-After), a 504 (a gateway gave
    up waiting) is too slow, anything else fails."""
    if response.status_code == 504:
        return too_slow("HTTP 504 (gateway timeout)", retry_after(response))
    if response.status_code in RETRYABLE_STATUS:
        return retry(f"HTTP {response.status_code}", retry_after(response))
    return fail(message)


class Unreachable(ServiceError):
    """No connection could be made (refused, unknown host, connect timeout)."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


class TooSlow(ServiceError):
    """The service took too long to answer (`cause`: a 504, a read timeout), after
    `attempts` tries: at once under `Retrier.call(..., shrink=True)`, else when the budget
    ran out on such a cause."""

    def __init__(self, message: str, cause: str, attempts: int,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.attempts = attempts
        self.retry_after = retry_after


class Retrier:
    """One client's retry loop; thread-safe. It remembers whether the service has ever
    answered, which decides how long a refused connection is retried."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.answered = False

    def call(self, send: Callable[[], requests.Response],
             classify: Callable[[requests.Response], Outcome[T]], what: str, *,
             shrink: bool = False) -> T:
        """`send()` until `classify` says ok (its value is returned) or fail (ServiceError),
        or the budget is spent (ServiceError; `Unreachable` if no connection was made,
        `TooSlow` if the last answer was too slow). With `shrink` (the caller can ask for
        less), the first answer that is too slow raises `TooSlow` instead of a retry."""
        policy = self.policy
        cause, refused, slow = "", 0, False
        for attempt in range(1, policy.attempts + 1):
            after = None
            try:
                response = send()
                body = response.content  # inside the try: a cut body raises here
            except TRANSPORT_ERRORS as exc:
                cause, slow = describe_error(exc), read_timed_out(exc)
                refused = refused + 1 if not_connected(exc) else 0
                if refused and not self.answered and refused >= policy.connect_attempts:
                    break
            else:
                self.answered = True
                outcome = retry("body cut short") if _cut_short(response, body) \
                    else classify(response)
                if outcome.message is not None:
                    raise ServiceError(outcome.message)
                if outcome.cause is None:
                    return cast(T, outcome.value)
                cause, after, refused, slow = (outcome.cause, outcome.retry_after, 0,
                                               outcome.slow)
            if slow and shrink:
                raise TooSlow(f"{what}: {cause}", cause, attempt, after)
            if attempt < policy.attempts:
                time.sleep(policy.delay(attempt, after))
        message = f"{what}: gave up after {attempt} attempts, last cause: {cause}"
        if refused:
            raise Unreachable(message, cause)
        if slow:
            raise TooSlow(message, cause, attempt)
        raise ServiceError(message)


class Client:
    """What every service client is: `close()` releases its session (if it has one), and it
    is a context manager (`with DbsClient(settings) as dbs: ...`)."""

    session: requests.Session | None = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def not_connected(exc: Exception) -> bool:
    """True when the connection itself could not be made (nothing was sent)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(getattr(reason, "reason", reason), NewConnectionError)


def read_timed_out(exc: Exception) -> bool:
    """True when the service took too long to send its answer (headers or body)."""
    if isinstance(exc, requests.ReadTimeout):
        return True
    # A timeout while reading the body comes as ConnectionError(ReadTimeoutError) from requests.
    reason = exc.args[0] if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(reason, ReadTimeoutError)


def _cut_short(response: requests.Response, body: bytes) -> bool:
    """Fewer bytes than Content-Length. Content-Length counts the bytes on the wire, before
    any Content-Encoding is undone, so the count is urllib3's (`raw.tell()`), not the
    length of the decoded body: a gzip body cut short can decode to more bytes than the
    header announces, and a whole one always does."""
    expected = response.headers.get("Content-Length", "")
    if response.status_code in (204, 304):  # no body, whatever the header says
        return False
    tell = getattr(response.raw, "tell", None)
    received = tell() if callable(tell) else len(body)
    return expected.isdigit() and int(expected) > received


def pooled_session(*, pool: int, verify: bool | str = True,
                   cert: tuple[str, str] | str | None = None, hosts: int = 1
                   ) -> requests.Session:
    """A keep-alive session of `pool` connections per host; its adapter retries nothing."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=hosts, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.cert = cert
    return session


def retry_after(response: requests.Response) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def describe_error(exc: Exception) -> str:
    """What a requests exception means, in a few words."""
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken while reading the body (truncated response)"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "body could not be decoded (cut short?)"
    if read_timed_out(exc):
        return "read timed out"
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
