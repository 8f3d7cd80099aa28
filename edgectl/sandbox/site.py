"""The sandbox origin's content: a generated site of pages, assets and sitemaps, deterministic by seed."""

from __future__ import annotations

import gzip
import hashlib
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

SECTIONS = ("news", "docs", "blog", "shop")
PUBLIC_HOST = "www.sandbox.test"

# Freshness by kind of path, as a CDN operator would set it at the origin.
CACHE_CONTROL = {
    "page": "public, max-age=60, s-maxage=300",
    "asset": "public, max-age=86400, s-maxage=604800, immutable",
    "live": "public, max-age=0, s-maxage=2",
    "private": "private, no-store",
}


@dataclass(frozen=True)
class Resource:
    path: str
    kind: str  # page | asset | live | private
    content_type: str
    size: int
    section: str | None
    lastmod: datetime

    @property
    def cache_control(self) -> str:
        return CACHE_CONTROL[self.kind]

    @property
    def tags(self) -> list[str]:
        tags = [self.kind]
        if self.section:
            tags.append(f"section-{self.section}")
        if self.kind == "asset":
            tags.append("static")
        return tags


class Site:
    """Every path the origin serves, with sizes and dates fixed by the seed."""

    def __init__(self, pages: int = 500, seed: int = 7):
        rng = random.Random(seed)
        epoch = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.resources: dict[str, Resource] = {}
        self.versions: dict[str, int] = {}
        for i in range(pages):
            section = SECTIONS[i % len(SECTIONS)]
            lastmod = epoch + timedelta(days=rng.randrange(0, 320), seconds=rng.randrange(86400))
            self._add(f"/{section}/page-{i:04d}.html", "page", "text/html; charset=utf-8",
                      rng.randrange(2_000, 40_000), section, lastmod)
        assets = max(10, pages // 5)
        kinds = (("css", "text/css", 5_000, 50_000), ("js", "application/javascript", 10_000, 200_000),
                 ("img", "image/jpeg", 20_000, 500_000))
        for i in range(assets):
            ext, ctype, low, high = kinds[i % len(kinds)]
            name = {"css": "site", "js": "app", "img": "photo"}[ext]
            suffix = "jpg" if ext == "img" else ext
            lastmod = epoch + timedelta(days=rng.randrange(0, 320))
            self._add(f"/static/{ext}/{name}-{i:04d}.{suffix}", "asset", ctype, rng.randrange(low, high), None, lastmod)
        self._add("/", "page", "text/html; charset=utf-8", 8_000, None, epoch)
        self._add("/live/ticker.html", "live", "text/html; charset=utf-8", 1_000, "news", epoch)
        self._add("/account/profile.html", "private", "text/html; charset=utf-8", 3_000, None, epoch)

    def _add(self, path, kind, ctype, size, section, lastmod) -> None:
        self.resources[path] = Resource(path, kind, ctype, size, section, lastmod)

    def touch(self, path: str) -> None:
        """A new version of a path (a deploy): its ETag and body change."""
        self.versions[path] = self.versions.get(path, 0) + 1

    def etag(self, resource: Resource) -> str:
        digest = hashlib.sha1(f"{resource.path}:{self.versions.get(resource.path, 0)}".encode()).hexdigest()
        return f'"{digest[:16]}"'

    def body(self, resource: Resource) -> bytes:
        seed = f"{resource.path}:{self.versions.get(resource.path, 0)}\n".encode()
        if resource.content_type.startswith("text/html"):
            head = (f"<!doctype html><html><head><title>{resource.path}</title></head><body>"
                    f"<h1>{resource.path}</h1><p>version {self.versions.get(resource.path, 0)}</p>").encode()
            filler = (seed * (resource.size // len(seed) + 1))[: max(0, resource.size - len(head) - 14)]
            return head + filler + b"</body></html>"
        return (seed * (resource.size // len(seed) + 1))[: resource.size]

    # ---- sitemaps -------------------------------------------------------------
    def sitemap_names(self) -> list[str]:
        return ["sitemap-pages.xml", "sitemap-static.xml", "sitemap-news.xml.gz"]

    def sitemap_index(self, base: str) -> bytes:
        latest = max(r.lastmod for r in self.resources.values()).strftime("%Y-%m-%dT%H:%M:%SZ")
        entries = "".join(
            f"<sitemap><loc>{base}/{name}</loc><lastmod>{latest}</lastmod></sitemap>" for name in self.sitemap_names()
        )
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</sitemapindex>\n').encode()

    def sitemap(self, name: str, base: str) -> bytes | None:
        if name == "sitemap-pages.xml":
            chosen = [r for r in self.resources.values() if r.kind == "page" and r.section != "news"]
        elif name == "sitemap-static.xml":
            chosen = [r for r in self.resources.values() if r.kind == "asset"]
        elif name == "sitemap-news.xml.gz":
            chosen = [r for r in self.resources.values() if r.section == "news" and r.kind == "page"]
        else:
            return None
        urls = "".join(
            f"<url><loc>{base}{r.path}</loc><lastmod>{r.lastmod.strftime('%Y-%m-%dT%H:%M:%SZ')}</lastmod></url>"
            for r in sorted(chosen, key=lambda r: r.path)
        )
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
               f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>\n').encode()
        return gzip.compress(xml, mtime=0) if name.endswith(".gz") else xml

    def robots(self, base: str) -> bytes:
        return f"User-agent: *\nDisallow: /account/\nSitemap: {base}/sitemap.xml\n".encode()
