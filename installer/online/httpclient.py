"""The one HTTP client of first boot's talks with providers: the credential preflight, the
Telegram messages and the sender of queued ones. JSON in and out, bounded in time, and never a
URL or an exception text in what it returns (Telegram's URL holds the bot token).

- `request`: one GET or POST; every byte of the answer arrives by its deadline (a server that
  drips its answer is cut off there), and at most `MAX_BODY` bytes are read. An HTTP error
  status is an answer too; no answer at all raises `NoAnswer`, worded without the URL.
- `request_with_retries`: the retry policy (tenacity), for a message that should get through:
  no answer or a busy provider (HTTP 429, 5xx) is tried again with a short backoff
  (`RETRY_PAUSES_S`), a 429's `retry_after` is honoured, and everything ends by `total_seconds`
  (a `retry_after` longer than what is left ends it at once, with that answer). Any other
  answer (a refusal, a success) is returned as it is.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from installer import redact

log = logging.getLogger("clawdie.http")

MAX_BODY = 64 * 1024
MAX_REASON = 200
RETRY_PAUSES_S = (1.0, 2.0, 4.0)  # then the last one again, clipped to the deadline
ATTEMPT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status code, the JSON object of its body (None when it was not one) and
    how long the provider asked us to wait (Retry-After, or Telegram's `retry_after`)."""

    code: int
    body: dict[str, Any] | None
    retry_after: float | None = None

    @property
    def busy(self) -> bool:
        """No verdict: the provider asks to slow down or has trouble of its own."""
        return self.code == 429 or self.code >= 500


class NoAnswer(Exception):
    """No HTTP answer at all; the message says why, without any URL."""


def clean_reason(text: object, secret: str = "") -> str:
    """A provider's words for people: one line, printable, short, and never the key (should a
    provider echo it) nor any other secret registered for redaction."""
    words = str(text).replace(secret, "<redacted>") if secret else str(text)
    words = redact.redact(words)
    words = "".join(c if c.isprintable() else " " for c in words).strip()
    return words if len(words) <= MAX_REASON else words[: MAX_REASON - 1] + "…"


def _read_body(response: Any, deadline: float) -> bytes:
    """At most MAX_BODY bytes, stopping at the deadline (a server that drips stays bounded)."""
    # read1: whatever one receive brings (read(n) would wait for all n bytes of a dripping body)
    read = getattr(response, "read1", None) or response.read
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY:
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not finish in time")
        chunk = read(min(8192, MAX_BODY - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(data or b"null")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def parse_retry_after(header: str | None, body: dict[str, Any] | None) -> float | None:
    """Seconds to wait: Telegram's `parameters.retry_after`, else a Retry-After of seconds."""
    parameters = body.get("parameters") if body else None
    if isinstance(parameters, dict):
        value = parameters.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
    if header is not None and header.strip().isdigit():
        return float(header.strip())
    return None


def describe_os_error(err: object) -> str:
    if isinstance(err, socket.gaierror):
        return "name not resolved: no DNS"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__ if isinstance(err, BaseException) else str(err)


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json_body: object = None,
    timeout: float,
) -> Answer:
    """One request; the whole answer within `timeout` seconds. Raises NoAnswer."""
    deadline = time.monotonic() + timeout
    data = None if json_body is None else json.dumps(json_body).encode()
    all_headers = dict(headers or {})
    if data is not None:
        all_headers["Content-Type"] = "application/json"
    req = urllib.request.Request(  # noqa: S310 - the base URL is our own setting, not the seed's
        url, data=data, headers=all_headers, method=method
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            body = _parse(_read_body(response, deadline))
            return Answer(response.status, body, parse_retry_after(None, body))
    except urllib.error.HTTPError as err:
        try:
            body = _parse(_read_body(err, deadline))
        except (OSError, TimeoutError):
            body = None
        header = err.headers.get("Retry-After") if err.headers else None
        return Answer(err.code, body, parse_retry_after(header, body))
    except OSError as err:  # URLError, TimeoutError and the socket's own errors
        raise no_answer(err, f"no answer within {timeout:g} s") from None


def no_answer(err: OSError, timed_out: str) -> NoAnswer:
    """No answer, in words without the URL: `timed_out` when the time ran out, else why the
    server could not be reached."""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, TimeoutError):
        return NoAnswer(timed_out)
    return NoAnswer(f"not reachable ({describe_os_error(reason)})")


def describe_busy(provider: str, answer: Answer) -> str | None:
    """Why an answer is no verdict (rate limit, the provider's trouble), or None."""
    if answer.code == 429:
        wait = f", retry after {answer.retry_after:g} s" if answer.retry_after is not None else ""
        return f"{provider} asked to slow down (rate limit{wait})"
    if answer.code >= 500:
        return f"{provider} had trouble answering (HTTP {answer.code})"
    return None


def request_with_retries(  # noqa: C901 (11: the retry policy, five small closures on one deadline)
    method: str,
    url: str,
    *,
    what: str,
    headers: Mapping[str, str] | None = None,
    json_body: object = None,
    total_seconds: float,
    attempt_timeout: float = ATTEMPT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Answer:
    """`request`, tried again on no answer or a busy answer until `total_seconds` have passed
    (each try and each pause clipped to what is left). Returns the last answer; raises the last
    NoAnswer when no try got one. `what` names the talk in the log ("telegram")."""
    from tenacity import RetryCallState, Retrying, retry_if_exception_type, retry_if_result

    deadline = time.monotonic() + total_seconds

    def left() -> float:
        return deadline - time.monotonic()

    def last_answer(rs: RetryCallState) -> Answer | None:
        outcome = rs.outcome
        if outcome is None or outcome.failed:
            return None
        answer: Answer = outcome.result()
        return answer

    def pause(rs: RetryCallState) -> float:
        answer = last_answer(rs)
        if answer is not None and answer.retry_after is not None:
            return max(0.0, min(answer.retry_after, left()))
        step = RETRY_PAUSES_S[min(rs.attempt_number, len(RETRY_PAUSES_S)) - 1]
        return max(0.0, min(step, left()))

    def stop(rs: RetryCallState) -> bool:
        answer = last_answer(rs)
        if answer is not None and answer.retry_after is not None and answer.retry_after > left():
            return True  # asked to wait past our bound: that answer is the last word
        return left() <= 0.05

    def before_sleep(rs: RetryCallState) -> None:
        answer = last_answer(rs)
        if answer is not None:
            why = describe_busy(what, answer) or f"HTTP {answer.code}"
        else:
            err = rs.outcome.exception() if rs.outcome else None
            why = str(err)
        log.info("%s: %s, trying again (%.1f s left)", what, why, max(0.0, left()))

    def attempt() -> Answer:
        return request(
            method,
            url,
            headers=headers,
            json_body=json_body,
            timeout=max(0.05, min(attempt_timeout, left())),
        )

    retrying = Retrying(
        retry=retry_if_exception_type(NoAnswer) | retry_if_result(lambda a: a.busy),
        stop=stop,
        wait=pause,
        sleep=sleep,
        before_sleep=before_sleep,
        retry_error_callback=lambda rs: rs.outcome.result() if rs.outcome else None,
    )
    answer: Answer = retrying(attempt)
    return answer


def download(url: str, out: IO[bytes], *, limit: int, timeout: float) -> int:
    """GET `url` (http or https only) into `out`, at most `limit` bytes, each receive within
    `timeout` seconds; returns the bytes written. Raises NoAnswer, worded without the URL, for
    no answer, an HTTP error status, a body over `limit` or one cut short."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise NoAnswer("only http:// and https:// addresses are fetched")
    req = urllib.request.Request(url, method="GET")  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return _copy_body(response, out, limit)
    except urllib.error.HTTPError as err:
        raise NoAnswer(f"the server answered HTTP {err.code}") from None
    except OSError as err:
        raise no_answer(err, f"no answer for {timeout:g} s") from None


def _copy_body(response: Any, out: IO[bytes], limit: int) -> int:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise NoAnswer(f"the file is {int(declared)} bytes, more than the {limit} allowed")
    size = 0
    while chunk := response.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise NoAnswer(f"the file is more than the {limit} bytes allowed")
        out.write(chunk)
    if declared is not None and declared.isdigit() and size != int(declared):
        raise NoAnswer(f"the download was cut short ({size} of {declared} bytes)")
    return size
