"""A loopback proxy in front of moto that adds the Route 53 behaviour moto leaves out.

moto (5.2) answers every change with one constant change id that is INSYNC at once, applies a
change batch one change at a time and keeps what it applied when a later change fails, and lets
a DELETE remove records it was not asked to (tests/test_moto_route53_gaps.py shows each gap).
Requests pass through to moto unchanged, except:

  change status   every ChangeInfo in an answer gets an id of its own. GetChange for it reads
                  PENDING until release(), or, when the proxy has them, for `pending_polls`
                  GetChange calls or `pending_seconds` seconds, whichever ends first; then INSYNC.
                  An id the proxy never gave out is NoSuchChange.
  atomic batches  ChangeResourceRecordSets is checked against the zone's records first: CREATE of
                  a record that exists (same name, type and SetIdentifier), DELETE of one that
                  does not or whose values differ, a name outside the zone, more than 1,000
                  records or 32,000 characters of values (UPSERT counting twice) get
                  InvalidChangeBatch listing every problem, and nothing reaches moto. A batch that
                  passes reaches moto as the net change it makes, which moto applies whole; records
                  moto drops that the batch did not delete are put back.
  faults          inject(kind, times, only=...) answers the next `times` requests (or only those of
                  the named operations) with: throttling (400 Throttling), prior_request (400
                  PriorRequestNotComplete), unavailable (503 ServiceUnavailable), denied (403
                  AccessDenied), no_zone (404 NoSuchHostedZone), reset (TCP reset, no response)

Error bodies copy Route 53's shape and wording as seen in the wild:
  <ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type>
  <Code>InvalidChangeBatch</Code><Message>[Tried to create resource record set [name='www.example.com.',
  type='A', set-identifier='eu'] but it already exists]</Message></Error><RequestId>…</RequestId></ErrorResponse>
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from urllib.parse import unquote
from xml.sax.saxutils import escape

from tests.fakes.aws_proxy import THROTTLING, AwsProxy, Exchange, access_denied

NAMESPACE = "https://route53.amazonaws.com/doc/2013-04-01/"

# kind -> (HTTP status, error Type, Code, Message); {operation} and {zone} are filled in per request
ERRORS = {
    "throttling": THROTTLING,
    "prior_request": (400, "Sender", "PriorRequestNotComplete",
                      "The request was rejected because Route 53 was still processing a prior request."),
    "unavailable": (503, "Receiver", "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server."),
    "denied": access_denied("route53:{operation}"),
    "no_zone": (404, "Sender", "NoSuchHostedZone", "No hosted zone found with ID: {zone}"),
}
FAULT_KINDS = (*ERRORS, "reset")
NO_SUCH_CHANGE = (404, "Sender", "NoSuchChange", "A change with the specified change ID does not exist.")

MAX_RECORDS = 1000
MAX_VALUE_CHARS = 32000

_ZONE = re.compile(r"/hostedzone/([^/?]+)")
_CHANGE_INFO = re.compile(rb"<ChangeInfo>(.*?)</ChangeInfo>", re.S)
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass
class _Change:
    id: str
    submitted_at: str
    polls_left: int | None  # GetChange calls that still read PENDING; None: no such limit
    until: float | None  # time.monotonic() at which it reads INSYNC; None: no such limit
    released: bool = False

    def insync(self) -> bool:
        return (self.released or (self.polls_left is not None and self.polls_left <= 0)
                or (self.until is not None and time.monotonic() >= self.until))


@dataclass(frozen=True)
class _Record:
    """A resource record set as Route 53 compares them: by key, then by every other value."""

    name: str
    type: str
    set_identifier: str | None
    values: tuple
    element: ET.Element

    @property
    def key(self) -> tuple[str, str, str | None]:
        return self.name, self.type, self.set_identifier

    def named(self, name: str) -> "_Record":
        """The same record set with its name written as given."""
        element = copy.deepcopy(self.element)
        element.find("Name").text = name
        return replace(self, element=element)

    def described(self) -> str:
        shown = f"name='{self.name}', type='{self.type}'"
        if self.set_identifier is not None:
            shown += f", set-identifier='{self.set_identifier}'"
        return f"[{shown}]"


class Route53Faults(AwsProxy):
    service = "route53"
    namespace = NAMESPACE
    errors = ERRORS
    fault_kinds = FAULT_KINDS

    def __init__(self, upstream: str, *, pending_polls: int | None = None, pending_seconds: float | None = None):
        super().__init__(upstream)
        self._defaults = (pending_polls, pending_seconds)
        self.pending_polls = pending_polls
        self.pending_seconds = pending_seconds
        self._changes: dict[str, _Change] = {}
        # one batch at a time, and no listing while moto holds a batch half applied
        self._zones = threading.Lock()

    # -- control ---------------------------------------------------------------
    def release(self, change_id: str | None = None) -> None:
        """The change (every change, without an id) reads INSYNC from now on."""
        with self._lock:
            for change in self._changes.values():
                if change_id is None or change.id == _bare_change_id(change_id):
                    change.released = True

    def change_ids(self) -> list[str]:
        """The ids given out, oldest first, without the /change/ prefix."""
        with self._lock:
            return list(self._changes)

    def change_status(self, change_id: str) -> str:
        """What GetChange would read now, without counting as one."""
        with self._lock:
            return "INSYNC" if self._changes[_bare_change_id(change_id)].insync() else "PENDING"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._changes.clear()
        self.pending_polls, self.pending_seconds = self._defaults

    # -- requests --------------------------------------------------------------
    def fault_error(self, kind: str, exchange: Exchange) -> tuple[int, str, str, str]:
        status, error_type, code, message = ERRORS[kind]
        zone = _ZONE.search(exchange.path)
        return status, error_type, code, message.format(operation=exchange.operation or "Unknown",
                                                        zone=zone.group(1) if zone else "")

    def answer(self, exchange: Exchange) -> None:
        if exchange.operation == "GetChange":
            self._get_change(exchange)
        elif exchange.operation == "ChangeResourceRecordSets":
            with self._zones:
                self._change_batch(exchange)
        elif exchange.operation == "ListResourceRecordSets":
            with self._zones:
                exchange.send(*exchange.forward())
        else:
            status, headers, body = exchange.forward()
            exchange.send(status, headers, self._give_change_ids(status, body))

    def _get_change(self, exchange: Exchange) -> None:
        change_id = _bare_change_id(unquote(exchange.path.partition("?")[0].rsplit("/", 1)[-1]))
        with self._lock:
            change = self._changes.get(change_id)
            if change is not None:
                status = "INSYNC" if change.insync() else "PENDING"
                if change.polls_left is not None:
                    change.polls_left -= 1
        if change is None:
            exchange.send_error_response(*NO_SUCH_CHANGE)
            return
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<GetChangeResponse xmlns="{NAMESPACE}"><ChangeInfo>'
                f"<Id>/change/{change.id}</Id><Status>{status}</Status><SubmittedAt>{change.submitted_at}"
                f"</SubmittedAt></ChangeInfo></GetChangeResponse>").encode()
        exchange.send(200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", str(uuid.uuid4()))], body)

    def _give_change_ids(self, status: int, body: bytes) -> bytes:
        """Give every ChangeInfo in a successful answer an id of its own, PENDING unless told otherwise."""
        if not 200 <= status < 300:
            return body
        return _CHANGE_INFO.sub(self._new_change, body)

    def _new_change(self, found: re.Match) -> bytes:
        inner = found.group(1)
        submitted = re.search(rb"<SubmittedAt>([^<]*)</SubmittedAt>", inner)
        change_id, status = self._issue(submitted.group(1).decode() if submitted else "")
        inner = re.sub(rb"<Id>[^<]*</Id>", f"<Id>/change/{change_id}</Id>".encode(), inner)
        inner = re.sub(rb"<Status>[^<]*</Status>", f"<Status>{status}</Status>".encode(), inner)
        return b"<ChangeInfo>" + inner + b"</ChangeInfo>"

    def _issue(self, submitted_at: str) -> tuple[str, str]:
        """A new change id, and the status it starts with."""
        change = _Change(id="C" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20)),
                         submitted_at=submitted_at, polls_left=self.pending_polls,
                         until=None if self.pending_seconds is None else time.monotonic() + self.pending_seconds)
        with self._lock:
            self._changes[change.id] = change
            return change.id, "INSYNC" if change.insync() else "PENDING"

    # -- ChangeResourceRecordSets ------------------------------------------------
    def _change_batch(self, exchange: Exchange) -> None:
        zone = _ZONE.search(exchange.path).group(1)
        try:
            comment, changes = _parse_batch(exchange.body)
        except (ET.ParseError, KeyError, TypeError):
            exchange.send(*exchange.forward())  # moto says what is wrong with it
            return
        zone_name, records = self._zone(exchange, zone)
        if records is None:  # moto could not read the zone, so it answers the change with why
            exchange.send(*exchange.forward())
            return
        problems, after = _check(changes, records, zone_name)
        if problems:
            exchange.send_error_response(400, "Sender", "InvalidChangeBatch", f"[{', '.join(problems)}]")
            return
        status, headers, body = self._apply(exchange, records, after)
        if status != 200:
            exchange.send(status, headers, body)
            return
        self._put_back(exchange, zone, after)
        submitted_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        change_id, state = self._issue(submitted_at)
        shown = "" if comment is None else f"<Comment>{escape(comment)}</Comment>"
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<ChangeResourceRecordSetsResponse xmlns="{NAMESPACE}">'
                f"<ChangeInfo><Id>/change/{change_id}</Id><Status>{state}</Status><SubmittedAt>{submitted_at}"
                f"</SubmittedAt>{shown}</ChangeInfo></ChangeResourceRecordSetsResponse>").encode()
        exchange.send(200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", str(uuid.uuid4()))], body)

    def _zone(self, exchange: Exchange, zone: str) -> tuple[str, dict | None]:
        """The zone's name and its records by key, read from moto; ("", None) when moto cannot."""
        status, _, body = exchange.forward(b"", method="GET", path=f"/2013-04-01/hostedzone/{zone}")
        if status != 200:
            return "", None
        name = _normal_name(_strip_namespaces(ET.fromstring(body)).findtext("HostedZone/Name") or "")
        # one page of everything: moto's own paging repeats records that share a name and type
        status, _, body = exchange.forward(b"", method="GET",
                                           path=f"/2013-04-01/hostedzone/{zone}/rrset?maxitems=100000")
        if status != 200:
            return "", None
        listed = _strip_namespaces(ET.fromstring(body)).iter("ResourceRecordSet")
        return name, {record.key: record for record in map(_record, listed)}

    def _apply(self, exchange: Exchange, before: dict, after: dict) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send moto what a checked batch comes to, in as few requests as it takes.

        The net change rather than the batch spares moto what it gets wrong: a DELETE of a record
        created earlier in the same batch, a CREATE of a record it once created and deleted, an
        UPSERT of a name written in another case. moto counts UPSERT twice against its 1,000
        records, so a big batch goes in parts.
        """
        net = [("DELETE", record) for key, record in before.items() if key not in after]
        for key, record in after.items():
            if key not in before:
                # one record set of more than 500 values goes as CREATE, which moto counts once
                net.append(("UPSERT" if 2 * len(_values(record)) <= MAX_RECORDS else "CREATE", record))
            elif record.values != before[key].values:
                net.append(("UPSERT", record.named(before[key].element.findtext("Name") or record.name)))
        parts: list[list[tuple[str, _Record]]] = [[]]
        counted = 0
        for action, record in net:
            cost = len(_values(record)) * (2 if action == "UPSERT" else 1)
            if parts[-1] and counted + cost > MAX_RECORDS:
                parts.append([])
                counted = 0
            parts[-1].append((action, record))
            counted += cost
        status, headers, body = 200, [], b""
        for part in filter(None, parts):
            status, headers, body = exchange.forward(_batch_body(part))
            if status != 200:
                break
        return status, headers, body

    def _put_back(self, exchange: Exchange, zone: str, after: dict) -> None:
        """UPSERT the records the batch kept that moto dropped anyway (DELETE by SetIdentifier or by name)."""
        _, now = self._zone(exchange, zone)
        missing = [("UPSERT", record) for key, record in after.items() if now is not None and key not in now]
        if missing:
            exchange.forward(_batch_body(missing))


def _check(changes: list[tuple[str, _Record]], records: dict, zone_name: str) -> tuple[list[str], dict]:
    """Route 53's answer to a batch against the zone's records: its problems, and the records after it."""
    after = dict(records)
    problems: list[str] = []
    counted = chars = 0
    for action, record in changes:
        twice = 2 if action == "UPSERT" else 1
        counted += twice * (len(_values(record)) or 1)  # an alias counts as one record
        chars += twice * sum(len(value) for value in _values(record))
        if record.name != zone_name and not record.name.endswith("." + zone_name):
            problems.append(f"RRSet with DNS name {record.name} is not permitted in zone {zone_name}")
            continue
        existing = after.get(record.key)
        if action == "CREATE" and existing is not None:
            problems.append(f"Tried to create resource record set {record.described()} but it already exists")
        elif action == "DELETE" and existing is None:
            problems.append(f"Tried to delete resource record set {record.described()} but it was not found")
        elif action == "DELETE" and existing.values != record.values:
            problems.append(f"Tried to delete resource record set {record.described()} "
                            "but the values provided do not match the current values")
        elif action == "DELETE":
            del after[record.key]
        else:
            after[record.key] = record
    if counted > MAX_RECORDS:
        return [f"Number of records limit of {MAX_RECORDS} exceeded."], after
    if chars > MAX_VALUE_CHARS:
        return [f"RDATA character limit of {MAX_VALUE_CHARS} exceeded."], after
    return problems, after


def _parse_batch(body: bytes) -> tuple[str | None, list[tuple[str, _Record]]]:
    """The batch's comment and its (action, record set) changes."""
    root = _strip_namespaces(ET.fromstring(body))
    return root.findtext("ChangeBatch/Comment"), [
        (change.findtext("Action") or "", _record(change.find("ResourceRecordSet"))) for change in root.iter("Change")]


def _record(element: ET.Element) -> _Record:
    fields: dict[str, object] = {}
    for child in element:
        if child.tag == "ResourceRecords":
            fields[child.tag] = tuple(sorted((value.text or "").strip() for value in child.iter("Value")))
        elif len(child):  # AliasTarget, GeoLocation and the like: compared member by member
            fields[child.tag] = tuple(sorted((part.tag, _normal(part.tag, part.text)) for part in child))
        else:
            fields[child.tag] = _normal(child.tag, child.text)
    return _Record(name=str(fields.pop("Name")), type=str(fields.pop("Type")),
                   set_identifier=fields.pop("SetIdentifier", None),  # type: ignore[arg-type]
                   values=tuple(sorted(fields.items())), element=element)


def _values(record: _Record) -> tuple[str, ...]:
    return dict(record.values).get("ResourceRecords", ())  # type: ignore[return-value]


def _normal(tag: str, text: str | None) -> str:
    text = (text or "").strip()
    if tag in ("Name", "DNSName"):
        return _normal_name(text)
    return text.lower() if text.lower() in ("true", "false") else text


def _normal_name(name: str) -> str:
    # Route 53 keeps names in lower case and shows "*" as its octal escape
    name = name.lower().replace("\\052", "*")
    return name if name.endswith(".") else name + "."


def _batch_body(changes: list[tuple[str, _Record]]) -> bytes:
    root = ET.Element("ChangeResourceRecordSetsRequest", xmlns=NAMESPACE)
    listed = ET.SubElement(ET.SubElement(root, "ChangeBatch"), "Changes")
    for action, record in changes:
        change = ET.SubElement(listed, "Change")
        ET.SubElement(change, "Action").text = action
        change.append(record.element)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for element in root.iter():
        element.tag = element.tag.rsplit("}", 1)[-1]
    return root


def _bare_change_id(change_id: str) -> str:
    return change_id.removeprefix("/change/")
