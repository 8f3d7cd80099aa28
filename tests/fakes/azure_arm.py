"""A fake Azure Resource Manager for the Microsoft.Cdn purge API, on 127.0.0.1 over plain http.

It serves what edgectl's Azure providers call, shaped and refusing as ARM does:

  GET  .../providers/Microsoft.Cdn/profiles/{p}/endpoints/{e}            an Azure CDN endpoint
  POST .../providers/Microsoft.Cdn/profiles/{p}/endpoints/{e}/purge      {"contentPaths": [...]}
  GET  .../providers/Microsoft.Cdn/profiles/{p}/afdEndpoints/{e}         a Front Door endpoint
  POST .../providers/Microsoft.Cdn/profiles/{p}/afdEndpoints/{e}/purge   {"contentPaths": [...], "domains": [...]}
  GET  /subscriptions/{s}/resourcegroups/{rg}/providers/Microsoft.Cdn/operationresults/{id}
  GET  .../providers/Microsoft.Cdn/profiles/{p}/providers/Microsoft.Insights/metrics   Azure Monitor metrics
                                                                  (tests/fakes/azure_metrics.py)

A purge answers 202 with `Azure-AsyncOperation` (as in the REST spec's Endpoints_PurgeContent example)
and `Retry-After`; the operation reads InProgress, with `Retry-After` again as ARM sends it, for
`polls_before_done` GETs, then Succeeded (or Failed, after `fail_operations`). Refusals: 401 without the bearer token, 400 without api-version,
404 for an unknown resource group, profile or endpoint, 400 BadRequest for a body that is not
{"contentPaths": [...]} (snake_case keys included) or for a path Azure's documented rule refuses,
and 429/500 on demand through `fail_next`, in ARM's error body. It is an `edgectl.testing.FakeAPI`:
every request is in `requests` (a list of `Seen`), and `drop_next`, `reset_next` and `delay_next`
fault it too. Every accepted purge is recorded in `purges`.

    with FakeArm() as arm:
        arm.add_endpoint(SUB, "rg", "profile", "endpoint")
        arm.traffic.append(Traffic("profile", "endpoint.azureedge.net", minute, "Germany", requests_2xx=9))
        ... arm.url, arm.purges, arm.requests ...
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from edgectl.testing import Answer, FakeAPI, Seen
from tests.fakes import azure_metrics
from tests.fakes.azure_metrics import Traffic

# The rule Azure applies to purge paths, as the CDN purge page published it (a single resource
# with an optional query string, or a directory wildcard):
# https://github.com/MicrosoftDocs/azure-docs/blob/main/articles/cdn/cdn-purge-endpoint.md
# Written without nested quantifiers, so it cannot backtrack badly; same language as the original.
_C = r"[a-zA-Z0-9\-_.%=() ]"
_SINGLE = re.compile(rf"^/(?:{_C}+(?:/{_C}+)*/?)?(?:\?[-@_a-zA-Z0-9/%:;=!,.+'&() ]*)?$")
_WILDCARD = re.compile(rf"^/(?:{_C}+/)*\*$")
# ARM's message for a refused path, as the service returns it (Azure/azure-cli#26025, #6722).
_BAD_PATH = ('Invalid ContentPath "{}". ContentPath for purge action must be a relative path: '
             'either for a single resource "/path/pic.jpg" or a wild card "/path/*".')
# "URLs in a single cache purge call: 100" (Front Door limits).
MAX_PATHS = 100

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_RESOURCE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.cdn/profiles/(?P<profile>[^/]+)"
    r"/(?P<type>endpoints|afdendpoints)/(?P<endpoint>[^/]+)(?P<purge>/purge)?$", re.IGNORECASE)
_METRICS = re.compile(
    r"^(?P<uri>/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.cdn/profiles"
    r"/(?P<profile>[^/]+))/providers/microsoft\.insights/metrics$", re.IGNORECASE)
_OPERATION = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.cdn"
    r"/operationresults/(?P<id>[^/]+)$", re.IGNORECASE)


@dataclass
class Endpoint:
    subscription_id: str
    resource_group: str
    profile: str
    name: str
    kind: str  # "cdn" (endpoints) or "afd" (afdEndpoints)
    host_name: str
    provisioning_state: str = "Succeeded"


@dataclass
class Purge:
    """One accepted purge, as it arrived."""

    kind: str  # "cdn" or "afd"
    endpoint: str
    paths: list[str]
    domains: list[str] | None
    operation_id: str


@dataclass
class _Operation:
    id: str
    polls_left: int
    failure: tuple[str, str] | None
    polls: int = 0


# ARM's error for each status a test injects (code, message)
_INJECTED = {429: ("TooManyRequests", "The request is being throttled."),
             500: ("InternalServerError", "An internal server error occurred."),
             503: ("ServiceUnavailable", "The service is unavailable.")}


class FakeArm(FakeAPI):
    def __init__(self, token: str = "fake-arm-token", polls_before_done: int = 1, retry_after: int = 0):
        super().__init__()
        self.token = token
        self.polls_before_done = polls_before_done  # GETs of an operation that read InProgress before it finishes
        self.retry_after = retry_after  # Retry-After on the 202 and on each InProgress status: when to look again
        self.endpoints: dict[tuple[str, str, str, str, str], Endpoint] = {}
        self.purges: list[Purge] = []
        self.traffic: list[Traffic] = []  # what the metrics endpoint reports
        self._operations: dict[str, _Operation] = {}
        self._operation_failure: tuple[str, str] | None = None

    # -- shaping it ----------------------------------------------------------
    def add_endpoint(self, subscription_id: str, resource_group: str, profile: str, name: str,
                     kind: str = "cdn", host_name: str | None = None) -> Endpoint:
        if kind not in ("cdn", "afd"):
            raise ValueError("kind is cdn or afd")
        host = host_name or (f"{name}.azureedge.net" if kind == "cdn" else f"{name}-abc123.z01.azurefd.net")
        endpoint = Endpoint(subscription_id, resource_group, profile, name, kind, host)
        self.endpoints[_key(subscription_id, resource_group, profile, kind, name)] = endpoint
        return endpoint

    def fail_next(self, status: int = 503, count: int = 1, retry_after: float | str | None = None,
                  code: str | None = None, message: str | None = None) -> None:
        """Answer the next `count` requests with `status` in ARM's error body (with Retry-After if given)."""
        default_code, default_message = _INJECTED.get(status, ("Error", "Injected failure."))
        super().fail_next(status, count, retry_after, detail=(code or default_code, message or default_message))

    def fault_answer(self, seen: Seen, status: int, retry_after: Any, detail: tuple[str, str] | None = None) -> Answer:
        code, message = detail or _INJECTED.get(status, ("Error", "Injected failure."))
        extra = {} if retry_after is None else {"Retry-After": retry_after if isinstance(retry_after, str)
                                                              else f"{retry_after:g}"}
        return _reply(*_error(status, code, message, extra))

    def fail_operations(self, code: str = "PurgeFailed",
                        message: str = "The purge operation failed on the edge.") -> None:
        """Purges accepted from now on end Failed with this error instead of Succeeded."""
        self._operation_failure = (code, message)

    def purge_posts(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST" and r.path.lower().endswith("/purge")]

    # -- answering -----------------------------------------------------------
    def handle(self, seen: Seen) -> Answer:
        return _reply(*self._route(seen.method, seen.path, seen.query, seen.headers.get("authorization") or "",
                                   seen.body))

    def _route(self, method, path, query, authorization, body):
        if not authorization:
            return _error(401, "AuthenticationFailed",
                          "Authentication failed. The 'Authorization' header is missing.",
                          {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                               'error="invalid_token", error_description="The authentication '
                                               'failed because of missing \'Authorization\' header."'})
        if authorization != f"Bearer {self.token}":
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                          {"WWW-Authenticate": 'Bearer authorization_uri="https://login.windows.net/", '
                                               'error="invalid_token", error_description="The access token '
                                               'is invalid."'})
        versions = query.get("api-version") or []
        if not versions:
            return _error(400, "MissingApiVersionParameter",
                          "The api-version query parameter (?api-version=) is required for all requests.")
        if not _API_VERSION.match(versions[0]):
            return _error(400, "InvalidApiVersionParameter",
                          f"The api-version '{versions[0]}' is invalid.")
        match = _OPERATION.match(path)
        if match and method == "GET":
            return self._operation(match)
        match = _METRICS.match(path)
        if match and method == "GET":
            return self._metrics(match, query)
        match = _RESOURCE.match(path)
        if not match:
            return _error(404, "NotFound", f"No route for {method} {path}.")
        kind = "afd" if match["type"].lower() == "afdendpoints" else "cdn"
        found = self._find(match["sub"], match["rg"], match["profile"], kind, match["endpoint"])
        if isinstance(found, tuple):
            return found
        if match["purge"] and method == "POST":
            return self._purge(found, versions[0], body)
        if not match["purge"] and method == "GET":
            return 200, {}, _json(_resource(found))
        return _error(405, "MethodNotAllowed", f"{method} is not allowed on {path}.")

    def _metrics(self, match, query):
        profiles = {(e.subscription_id.lower(), e.resource_group.lower(), e.profile.lower())
                    for e in self.endpoints.values()}
        if (match["sub"].lower(), match["rg"].lower(), match["profile"].lower()) not in profiles:
            return _error(404, "ResourceNotFound", f"The Resource 'Microsoft.Cdn/profiles/{match['profile']}' under "
                          f"resource group '{match['rg']}' was not found.")
        try:
            with self._lock:
                traffic = list(self.traffic)
            return 200, {}, _json(azure_metrics.answer(match["uri"], query, traffic, match["profile"]))
        except azure_metrics.BadRequest as refused:
            if refused.wrapped:
                return _error(refused.status, refused.code, refused.message)
            # the metrics service answers most refusals unwrapped: {"code": ..., "message": ...}
            return refused.status, {}, _json({"code": refused.code, "message": refused.message})

    def _find(self, sub, rg, profile, kind, name):
        known_groups = {(e.subscription_id.lower(), e.resource_group.lower()) for e in self.endpoints.values()}
        if (sub.lower(), rg.lower()) not in known_groups:
            return _error(404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found.")
        endpoint = self.endpoints.get(_key(sub, rg, profile, kind, name))
        if endpoint is None:
            kind_name = "endpoints" if kind == "cdn" else "afdendpoints"
            return _error(404, "ResourceNotFound",
                          f"The Resource 'Microsoft.Cdn/profiles/{profile}/{kind_name}/{name}' under resource "
                          f"group '{rg}' was not found. For more details please go to "
                          "https://aka.ms/ARMResourceNotFoundFix")
        return endpoint

    def _purge(self, endpoint: Endpoint, api_version: str, body: bytes):
        try:
            document = json.loads(body or b"null")
        except ValueError:
            return _error(400, "BadRequest", "The request body is not valid JSON.")
        if not isinstance(document, dict):
            return _error(400, "BadRequest", "The request body must be a JSON object.")
        allowed = {"contentPaths", "domains"} if endpoint.kind == "afd" else {"contentPaths"}
        model = "AfdPurgeParameters" if endpoint.kind == "afd" else "PurgeParameters"
        for key in document:
            if key not in allowed:
                return _error(400, "BadRequest", f"Could not find member '{key}' on object of type '{model}'.")
        paths = document.get("contentPaths")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            return _error(400, "BadRequest", "contentPaths is required: a non-empty list of paths.")
        if len(paths) > MAX_PATHS:
            return _error(400, "BadRequest", f"At most {MAX_PATHS} content paths are allowed in one purge request.")
        for content_path in paths:
            if not (_SINGLE.match(content_path) or _WILDCARD.match(content_path)):
                return _error(400, "BadRequest", _BAD_PATH.format(content_path))
        domains = document.get("domains")
        if domains is not None:
            if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
                return _error(400, "BadRequest", "domains must be a list of domain names.")
            for domain in domains:
                if domain.startswith("*."):
                    return _error(400, "BadRequest", f"Cache purge is not supported for wildcard domain '{domain}'.")
        operation = _Operation(uuid.uuid4().hex, self.polls_before_done, self._operation_failure)
        with self._lock:
            self._operations[operation.id] = operation
            self.purges.append(Purge(endpoint.kind, endpoint.name, list(paths),
                                     None if domains is None else list(domains), operation.id))
        status_url = (f"{self.url}/subscriptions/{endpoint.subscription_id}/resourcegroups/{endpoint.resource_group}"
                      f"/providers/Microsoft.Cdn/operationresults/{operation.id}?api-version={api_version}")
        return 202, {"Azure-AsyncOperation": status_url, "Retry-After": str(self.retry_after)}, b""

    def _operation(self, match):
        with self._lock:
            operation = self._operations.get(match["id"])
            if operation is None:
                return _error(404, "ResourceNotFound", f"Operation '{match['id']}' was not found.")
            operation.polls += 1
            if operation.polls_left > 0:
                operation.polls_left -= 1
                status = "InProgress"
            else:
                status = "Failed" if operation.failure else "Succeeded"
        document = {"id": match.string, "name": operation.id, "status": status}
        if status == "Failed":
            code, message = operation.failure
            document["error"] = {"code": code, "message": message}
        extra = {"Retry-After": str(self.retry_after)} if status == "InProgress" else {}
        return 200, extra, _json(document)


def _reply(status: int, extra: dict, payload: bytes) -> Answer:
    headers = {"Content-Type": "application/json; charset=utf-8"} if payload else {}
    return Answer(status, payload, {**headers, **extra, "x-ms-request-id": str(uuid.uuid4())})


def _key(sub: str, rg: str, profile: str, kind: str, name: str) -> tuple[str, str, str, str, str]:
    # ARM resource names are case-insensitive
    return sub.lower(), rg.lower(), profile.lower(), kind, name.lower()


def _json(document) -> bytes:
    return json.dumps(document).encode()


def _error(status: int, code: str, message: str, extra: dict | None = None):
    return status, dict(extra or {}), _json({"error": {"code": code, "message": message}})


def _resource(endpoint: Endpoint) -> dict:
    base = (f"/subscriptions/{endpoint.subscription_id}/resourcegroups/{endpoint.resource_group}"
            f"/providers/Microsoft.Cdn/profiles/{endpoint.profile}")
    if endpoint.kind == "cdn":
        return {"id": f"{base}/endpoints/{endpoint.name}", "name": endpoint.name,
                "type": "Microsoft.Cdn/profiles/endpoints", "location": "Global",
                "properties": {"hostName": endpoint.host_name, "provisioningState": endpoint.provisioning_state,
                               "resourceState": "Running", "isHttpAllowed": True, "isHttpsAllowed": True,
                               "origins": [{"name": "origin", "properties": {"hostName": "origin.example.com"}}]}}
    return {"id": f"{base}/afdendpoints/{endpoint.name}", "name": endpoint.name,
            "type": "Microsoft.Cdn/profiles/afdendpoints", "location": "Global",
            "properties": {"hostName": endpoint.host_name, "enabledState": "Enabled",
                           "provisioningState": endpoint.provisioning_state, "deploymentStatus": "Succeeded"}}
