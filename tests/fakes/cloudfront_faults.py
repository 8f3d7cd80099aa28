"""A loopback proxy in front of moto that adds the CloudFront behaviour moto leaves out.

moto (5.2) completes every invalidation at once, creates a new one on every resend of the same
CallerReference and never throttles. Requests pass through to moto unchanged, except:

  idempotence   CreateInvalidation with a CallerReference seen before returns the earlier
                invalidation when the paths are the same, InvalidationBatchAlreadyExists when not
  in progress   while `hold` is set, new invalidations read as InProgress (in every response
                that shows their status) until release()
  caps          CreateInvalidation that would take the held file paths past `file_cap` or the held
                wildcard paths past `wildcard_cap` gets TooManyInvalidationsInProgress
  faults        inject(kind, times) answers the next `times` requests (or only CreateInvalidation
                ones) with one of: throttling (400 Throttling), unavailable (503 ServiceUnavailable),
                too_many (400 TooManyInvalidationsInProgress), denied (403 AccessDenied),
                reset (TCP reset, no response)

Error bodies copy CloudFront's shape and wording as seen in the wild:
  <ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type>
  <Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>…</RequestId></ErrorResponse>
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from tests.fakes.aws_proxy import THROTTLING, AwsProxy, Exchange, access_denied

NAMESPACE = "http://cloudfront.amazonaws.com/doc/2020-05-31/"

# kind -> (HTTP status, error Type, Code, Message)
ERRORS = {
    "throttling": THROTTLING,
    "unavailable": (503, "Receiver", "ServiceUnavailable",
                    "CloudFront encountered an internal error. Please try again."),
    "too_many": (400, "Sender", "TooManyInvalidationsInProgress",
                 "Processing your request will cause you to exceed the maximum number of in-progress invalidations."),
    "denied": access_denied("cloudfront:CreateInvalidation"),
    "already_exists": (400, "Sender", "InvalidationBatchAlreadyExists", "Invalidation batch specified already exists."),
}
FAULT_KINDS = ("throttling", "unavailable", "too_many", "denied", "reset")

_DISTRIBUTION = re.compile(r"^/[\d-]+/distribution/(?P<dist>[^/?]+)/")


@dataclass
class Held:
    distribution: str
    files: int
    wildcards: int


@dataclass
class Created:
    paths: tuple[str, ...]
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class _State:
    held: dict[str, Held] = field(default_factory=dict)  # invalidation id -> what it holds
    by_reference: dict[tuple[str, str], Created] = field(default_factory=dict)


class CloudFrontFaults(AwsProxy):
    service = "cloudfront"
    namespace = NAMESPACE
    errors = ERRORS
    fault_kinds = FAULT_KINDS

    def __init__(self, upstream: str, *, file_cap: int = 3000, wildcard_cap: int = 15):
        super().__init__(upstream)
        self.file_cap = file_cap
        self.wildcard_cap = wildcard_cap
        self.hold = False
        self._state = _State()

    # -- control ---------------------------------------------------------------
    def inject(self, kind: str, times: int = 1, *, retry_after: str | None = None, create_only: bool = True) -> None:
        super().inject(kind, times, only="CreateInvalidation" if create_only else None, retry_after=retry_after)

    def release(self) -> None:
        """Every held invalidation completes."""
        with self._lock:
            self._state.held.clear()

    def in_progress(self, distribution: str) -> tuple[int, int]:
        """(file paths, wildcard paths) held in progress for a distribution."""
        with self._lock:
            held = [h for h in self._state.held.values() if h.distribution == distribution]
        return sum(h.files for h in held), sum(h.wildcards for h in held)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._state = _State()
        self.hold = False

    # -- requests --------------------------------------------------------------
    def answer(self, exchange: Exchange) -> None:
        if exchange.operation == "CreateInvalidation":
            self._create(exchange, _DISTRIBUTION.match(exchange.path).group("dist"))
            return
        status, headers, response = exchange.forward()
        if "/invalidation" in exchange.path:
            response = self._rewrite_status(response)
        exchange.send(status, headers, response)

    def _create(self, exchange: Exchange, distribution: str) -> None:
        try:
            paths, reference = _parse_batch(exchange.body)
        except ET.ParseError:
            exchange.send(*exchange.forward())
            return
        key = (distribution, reference)
        with self._lock:
            earlier = self._state.by_reference.get(key)
            if earlier is None:
                files_held = sum(h.files for h in self._state.held.values() if h.distribution == distribution)
                wild_held = sum(h.wildcards for h in self._state.held.values() if h.distribution == distribution)
        if earlier is not None:
            if earlier.paths == paths:
                exchange.send(earlier.status, earlier.headers, self._rewrite_status(earlier.body))
            else:
                exchange.send_error_response(*ERRORS["already_exists"])
            return
        wildcards = sum(1 for p in paths if p.endswith("*"))
        files = len(paths) - wildcards
        if files_held + files > self.file_cap or wild_held + wildcards > self.wildcard_cap:
            exchange.send_error_response(*ERRORS["too_many"])
            return
        status, headers, response = exchange.forward()
        if status == 201:
            found = re.search(rb"<Id>([^<]+)</Id>", response)
            with self._lock:
                if found and self.hold:
                    self._state.held[found.group(1).decode()] = Held(distribution, files, wildcards)
                self._state.by_reference[key] = Created(paths, status, headers, response)
            response = self._rewrite_status(response)
        exchange.send(status, headers, response)

    def _rewrite_status(self, body: bytes) -> bytes:
        """Show held invalidations as InProgress wherever their status appears."""
        with self._lock:
            held = list(self._state.held)
        text = body.decode("utf-8", "replace")
        for inv_id in held:
            text = re.sub(rf"(<Id>{re.escape(inv_id)}</Id>(?:<CreateTime>[^<]*</CreateTime>)?<Status>)[^<]*(</Status>)",
                          r"\1InProgress\2", text)
        return text.encode("utf-8")


def _parse_batch(body: bytes) -> tuple[tuple[str, ...], str]:
    root = ET.fromstring(body)
    paths = tuple(el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Path")
    reference = next((el.text or "" for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "CallerReference"), "")
    return paths, reference
