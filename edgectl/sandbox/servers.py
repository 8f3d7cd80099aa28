"""The sandbox's HTTP servers on aiohttp.web: the origin, and edge nodes that cache in front of it."""

from __future__ import annotations

import asyncio
import hmac
import os
import random
import re
import resource
import shutil
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime

from aiohttp import ClientSession, ClientTimeout, web

from edgectl.sandbox.site import PUBLIC_HOST, Site

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "content-length", "content-encoding"}


# ---- origin ---------------------------------------------------------------------

def origin_app(site: Site) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        path = request.path
        base = f"{request.scheme}://{request.host}"
        if path == "/robots.txt":
            return web.Response(body=site.robots(base), content_type="text/plain")
        if path == "/sitemap.xml":
            return web.Response(body=site.sitemap_index(base), content_type="application/xml")
        if path.startswith("/sitemap-"):
            body = site.sitemap(path[1:], base)
            if body is None:
                raise web.HTTPNotFound()
            ctype = "application/gzip" if path.endswith(".gz") else "application/xml"
            return web.Response(body=body, headers={"Content-Type": ctype})
        if path == "/.origin/touch" and request.method == "POST":
            doc = await request.json()
            for item in doc.get("paths", []):
                site.touch(item)
            return web.json_response({"touched": len(doc.get("paths", []))})
        res = site.resources.get(path)
        if res is None:
            return web.Response(status=404, text="not found\n", headers={"Cache-Control": "public, max-age=30, s-maxage=30"})
        etag = site.etag(res)
        headers = {
            "Cache-Control": res.cache_control,
            "ETag": etag,
            "Last-Modified": formatdate(res.lastmod.timestamp(), usegmt=True),
            "Surrogate-Key": " ".join(res.tags),
            "Cache-Tag": ",".join(res.tags),
            "Content-Type": res.content_type,
        }
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=site.body(res) if request.method != "HEAD" else b"", headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


# ---- edge cache -------------------------------------------------------------------

@dataclass
class Entry:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stored_at: float
    ttl: float
    etag: str | None
    tags: set[str]

    def age(self, now: float) -> float:
        return max(0.0, now - self.stored_at)

    def fresh(self, now: float) -> bool:
        return self.age(now) < self.ttl


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    down: bool = False

    def to_dict(self) -> dict:
        return {"latency_ms": self.latency_ms, "error_rate": self.error_rate, "down": self.down}


@dataclass
class EdgeNode:
    name: str
    region: str
    origin: str
    token: str
    cache: dict[str, Entry] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    hits: int = 0
    misses: int = 0
    purges: int = 0
    bytes_served: int = 0
    requests: int = 0  # visitors' requests answered, whatever the answer (not /health, /.edge/ or PURGE)
    responses_4xx: int = 0
    responses_5xx: int = 0
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    _cpu_mark: tuple[float, float] = (0.0, 0.0)

    def stats(self) -> dict:
        """What the node holds now (entries, bytes cached) and running totals since it started, which an
        `analytics pull` of the `http` kind turns into increases."""
        return {"node": self.name, "hits": self.hits, "misses": self.misses, "entries": len(self.cache),
                "bytes": sum(len(e.body) for e in self.cache.values()), "purges": self.purges,
                "requests": self.requests, "responses_4xx": self.responses_4xx, "responses_5xx": self.responses_5xx,
                "bytes_served": self.bytes_served, "started_at": round(self.started_at, 3),
                "faults": self.faults.to_dict()}

    def count(self, status: int, size: int) -> None:
        self.requests += 1
        self.bytes_served += size
        if 400 <= status < 500:
            self.responses_4xx += 1
        elif status >= 500:
            self.responses_5xx += 1

    def health(self) -> dict:
        now, cpu = time.monotonic(), time.process_time()
        last_wall, last_cpu = self._cpu_mark
        cpu_percent = 100.0 * (cpu - last_cpu) / (now - last_wall) if last_wall and now > last_wall else 0.0
        self._cpu_mark = (now, cpu)
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        disk = shutil.disk_usage("/")
        uptime = max(now - self.started, 1e-3)
        return {
            "status": "ok", "node": self.name, "region": self.region,
            "cpu_percent": round(min(cpu_percent, 100.0), 2),
            "memory_percent": round(100.0 * rss_kb * 1024 / total, 2),
            "disk_percent": round(100.0 * disk.used / disk.total, 2),
            "network_mbps": round(self.bytes_served * 8 / uptime / 1e6, 3),
            "cache_entries": len(self.cache),
        }

    def purge(self, urls=(), prefixes=(), tags=(), everything=False) -> int:
        if everything:
            doomed = list(self.cache)
        else:
            paths = {_path_of(u) for u in urls}
            wanted_tags = set(tags)
            doomed = [k for k, e in self.cache.items()
                      if _path_of(k) in paths or k in paths
                      or any(_path_of(k).startswith(_path_of(p)) for p in prefixes)
                      or (wanted_tags and e.tags & wanted_tags)]
        for key in doomed:
            del self.cache[key]
        self.purges += len(doomed)
        return len(doomed)


def _path_of(url: str) -> str:
    """'https://www.sandbox.test/a?b' or '/a?b' -> '/a?b'."""
    match = re.match(r"^[a-z][a-z0-9+.-]*://[^/]*", url, re.I)
    rest = url[match.end():] if match else url
    return rest or "/"


def freshness(headers) -> float | None:
    """Seconds a shared cache may keep the response, or None when it must not store it."""
    cc = {}
    for part in headers.get("Cache-Control", "").split(","):
        key, _, value = part.strip().partition("=")
        if key:
            cc[key.lower()] = value.strip('"')
    if "no-store" in cc or "private" in cc:
        return None
    if "no-cache" in cc:
        return 0.0
    for key in ("s-maxage", "max-age"):
        if key in cc:
            try:
                return float(cc[key])
            except ValueError:
                return None
    if "Expires" in headers:
        try:
            return max(0.0, parsedate_to_datetime(headers["Expires"]).timestamp() - time.time())
        except (TypeError, ValueError):
            return 0.0
    return None


def _authorized(node: EdgeNode, request: web.Request) -> bool:
    header = request.headers.get("Authorization", "")
    return header.startswith("Bearer ") and hmac.compare_digest(header[7:], node.token)


def edge_app(node: EdgeNode) -> web.Application:
    cache_name = node.name
    session: dict[str, ClientSession] = {}

    def status_header(detail: str) -> str:
        return f"{cache_name}; {detail}"

    def from_entry(entry: Entry, now: float, x_cache: str, cache_status: str, head: bool) -> web.Response:
        headers = [(k, v) for k, v in entry.headers]
        headers += [("Age", str(int(entry.age(now)))), ("X-Cache", x_cache), ("Cache-Status", cache_status),
                    ("X-Served-By", cache_name)]
        response = web.Response(status=entry.status, body=b"" if head else entry.body)
        for key, value in headers:
            response.headers.add(key, value)
        return response

    async def fetch(request: web.Request, conditional: str | None = None):
        client = session.get("client")
        if client is None:
            client = session["client"] = ClientSession(timeout=ClientTimeout(total=30), auto_decompress=False)
        headers = {"Host": request.headers.get("Host", PUBLIC_HOST), "User-Agent": request.headers.get("User-Agent", "")}
        if conditional:
            headers["If-None-Match"] = conditional
        async with client.request("GET", node.origin + request.path_qs, headers=headers, allow_redirects=False) as resp:
            body = await resp.read()
            kept = [(k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP]
            return resp.status, kept, body, resp.headers

    async def proxy(request: web.Request) -> web.StreamResponse:
        if node.faults.down:
            return web.Response(status=503, text="node down\n")
        if node.faults.latency_ms:
            await asyncio.sleep(node.faults.latency_ms / 1000)
        if node.faults.error_rate and random.random() < node.faults.error_rate:
            return web.Response(status=500, text="injected error\n")
        if request.method == "PURGE":
            if not _authorized(node, request):
                return web.json_response({"error": "unauthorized"}, status=401)
            return web.json_response({"purged": node.purge(urls=[request.path_qs])})
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD, PURGE"})
        head = request.method == "HEAD"
        key = request.path_qs
        now = time.monotonic()
        entry = node.cache.get(key)
        if entry and entry.fresh(now):
            node.hits += 1
            ttl = int(entry.ttl - entry.age(now))
            return from_entry(entry, now, "HIT", status_header(f"hit; ttl={ttl}"), head)
        node.misses += 1
        try:
            status, headers, body, raw = await fetch(request, entry.etag if entry else None)
        except Exception:
            return web.Response(status=502, text="origin unreachable\n",
                                headers={"Cache-Status": status_header("fwd=uri-miss; detail=origin-error")})
        if entry and status == 304:
            entry.stored_at, entry.ttl = now, freshness(raw) or 0.0
            return from_entry(entry, now, "REVALIDATED", status_header(f"fwd=stale; fwd-status=304; ttl={int(entry.ttl)}"), head)
        ttl = freshness(raw) if status in (200, 301, 404) else None
        fwd = "stale" if entry else "uri-miss"
        if ttl is None:
            node.cache.pop(key, None)
            x_cache, detail = "BYPASS" if status == 200 else "MISS", f"fwd={fwd}; fwd-status={status}"
            response = web.Response(status=status, body=b"" if head else body)
            for k, v in headers:
                response.headers.add(k, v)
            response.headers.update({"X-Cache": x_cache, "Cache-Status": status_header(detail), "X-Served-By": cache_name})
            return response
        tags = set(raw.get("Surrogate-Key", "").split()) | {t.strip() for t in raw.get("Cache-Tag", "").split(",") if t.strip()}
        new = Entry(status, headers, body, now, ttl, raw.get("ETag"), tags)
        node.cache[key] = new
        return from_entry(new, now, "EXPIRED" if entry else "MISS",
                          status_header(f"fwd={fwd}; fwd-status={status}; stored; ttl={int(ttl)}"), head)

    async def health(request: web.Request) -> web.Response:
        if node.faults.down:
            return web.json_response({"status": "down", "node": node.name}, status=503)
        if node.faults.latency_ms:
            await asyncio.sleep(node.faults.latency_ms / 1000)
        if node.faults.error_rate and random.random() < node.faults.error_rate:
            return web.json_response({"status": "error", "node": node.name}, status=500)
        return web.json_response(node.health())

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(node.stats())

    async def bulk_purge(request: web.Request) -> web.Response:
        if not _authorized(node, request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            doc = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"error": "body must be JSON"}, status=400)
        lists = {k: doc.get(k, []) for k in ("urls", "prefixes", "tags")} if isinstance(doc, dict) else None
        if lists is None or not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists.values()):
            return web.json_response({"error": "urls, prefixes and tags must be lists of strings"}, status=400)
        everything = doc.get("all") is True
        if not everything and not any(lists.values()):
            return web.json_response({"error": "nothing to purge"}, status=400)
        return web.json_response({"purged": node.purge(**lists, everything=everything)})

    async def fault(request: web.Request) -> web.Response:
        if not _authorized(node, request):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            doc = await request.json()
            latency = float(doc.get("latency_ms", node.faults.latency_ms))
            rate = float(doc.get("error_rate", node.faults.error_rate))
            down = bool(doc.get("down", node.faults.down))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": "latency_ms and error_rate must be numbers"}, status=400)
        if latency < 0 or not 0 <= rate <= 1:
            return web.json_response({"error": "latency_ms >= 0 and 0 <= error_rate <= 1"}, status=400)
        node.faults = Faults(latency, rate, down)
        return web.json_response(node.faults.to_dict())

    async def close_client(app):
        if "client" in session:
            await session["client"].close()

    @web.middleware
    async def count_traffic(request: web.Request, handler):
        response = await handler(request)
        if request.method != "PURGE" and request.path != "/health" and not request.path.startswith("/.edge/"):
            node.count(response.status, len(response.body) if isinstance(response.body, bytes) else 0)
        return response

    app = web.Application(middlewares=[count_traffic])
    app.router.add_get("/health", health)
    app.router.add_get("/.edge/stats", stats)
    app.router.add_post("/.edge/purge", bulk_purge)
    app.router.add_post("/.edge/fault", fault)
    app.router.add_route("*", "/{tail:.*}", proxy)
    app.on_cleanup.append(close_client)
    return app
