"""Serve the web portal (the React build in ``web/dist``) from the API process.

The portal's client routes (``/calculations/12``, ``/clusters``...) share their paths with API
routes on purpose: a page address names the same thing as the resource behind it. Who
answers is decided per request, by one ASGI middleware placed in front of the API:

* ``GET``/``HEAD`` of ``/`` -> the portal's ``index.html``;
* ``GET``/``HEAD`` of ``/_portal/<file>`` -> the built assets (content-hashed names, cached
  for a year); nothing in the API lives under ``/_portal``;
* ``GET``/``HEAD`` of a *portal section* (first path segment in :data:`SECTIONS`) that is a
  **page navigation** -> ``index.html``, and the client-side router shows the page. A
  navigation is a request whose ``Accept`` header lists ``text/html`` or that carries
  ``Sec-Fetch-Dest: document`` — what browsers send for the address bar, links and reloads.
  API clients (the portal's own fetch calls send ``Accept: application/json``; curl,
  httpx and requests send ``*/*``) never match, so they always reach the API;
* everything else — other methods, other paths (``/docs``, ``/openapi.json``, ``/health``,
  ``/agent/...``), non-navigation requests — goes to the API untouched (streaming
  responses such as the log SSE stream included). Responses of section paths carry
  ``Vary: Accept`` so caches keep the two representations apart.

The build is looked up, in order, in ``$HPCGATE_PORTAL_DIR``, in ``hpcgate/portal_dist``
(a packaged copy) and in ``web/dist`` of the source checkout. When none holds an
``index.html``, the same requests get a short page that says how to build it
(``scripts/build-web.sh``) — the API keeps working either way. The directory is checked
per request, so building while the server runs needs no restart.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: First path segments the portal's router owns for page navigations ("" is ``/``).
SECTIONS = frozenset(
    {
        "",
        "login",
        "calculations",
        "analyses",
        "molecules",
        "models",
        "clusters",
        "logs",
        "users",
        "profile",
    }
)
ASSETS_PREFIX = "/_portal/"
ENV_DIR = "HPCGATE_PORTAL_DIR"

_INDEX_HEADERS = {
    "Cache-Control": "no-cache",
    "Vary": "Accept",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # Chart.js draws on canvas; React sets style attributes (hence 'unsafe-inline' for styles
    # only). No inline or third-party scripts: the build is one hashed module.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    ),
}

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hpcgate: portal not built</title>
<style>body{{font-family:sans-serif;max-width:42rem;margin:4rem auto;line-height:1.5;color:#1f2937}}
code,pre{{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}}pre{{padding:.75rem}}</style>
</head><body>
<h1>hpcgate is running; the web portal is not built</h1>
<p>The API answers (see <a href="/docs">/docs</a> and <a href="/health">/health</a>), but no
portal build was found{where}.</p>
<p>Build it once (needs Node.js &ge; 20 and npm), then reload this page:</p>
<pre>scripts/build-web.sh</pre>
<p>or by hand: <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.
<code>make demo</code> builds it for you.</p>
</body></html>
"""


def candidate_dirs() -> list[Path]:
    """Where a portal build may live, in the order they are tried."""
    out: list[Path] = []
    env = os.environ.get(ENV_DIR)
    if env:
        out.append(Path(env))
    package = Path(__file__).resolve().parent.parent
    out.append(package / "portal_dist")
    out.append(package.parent / "web" / "dist")
    return out


def find_portal_dir(candidates: list[Path] | None = None) -> Path | None:
    for directory in candidates if candidates is not None else candidate_dirs():
        if (directory / "index.html").is_file():
            return directory
    return None


def is_navigation(headers: Headers) -> bool:
    """A browser page load (address bar, link, reload), as opposed to an API call."""
    if headers.get("sec-fetch-dest", "").lower() == "document":
        return True
    accept = headers.get("accept", "").lower()
    return any(part.split(";")[0].strip() == "text/html" for part in accept.split(","))


def _section(path: str) -> str | None:
    """The portal section a page path belongs to; a download (last segment with a file
    extension, e.g. ``/calculations/12/report.pdf``) always goes to the API."""
    first = path.lstrip("/").split("/", 1)[0]
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if "." in last:
        return None
    return first if first in SECTIONS else None


class PortalMiddleware:
    """Answers portal pages and assets; passes every other request to the API."""

    def __init__(
        self,
        app: ASGIApp,
        directory: Path | None = None,
        connect_sources: Callable[[], list[str]] | None = None,
    ) -> None:
        self.app = app
        self.fixed = directory
        self.connect_sources = connect_sources or (lambda: [])

    def _index_headers(self) -> dict[str, str]:
        """The CSP lets the page call its own origin plus configured ones (the ML-API)."""
        headers = dict(_INDEX_HEADERS)
        extra = " ".join(_origin(u) for u in self.connect_sources() if _origin(u))
        if extra:
            headers["Content-Security-Policy"] = headers["Content-Security-Policy"].replace(
                "connect-src 'self'", f"connect-src 'self' {extra}"
            )
        return headers

    def _dir(self) -> Path | None:
        if self.fixed is not None:
            return self.fixed if (self.fixed / "index.html").is_file() else None
        return find_portal_dir()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ASSETS_PREFIX):
            await self._asset(path[len(ASSETS_PREFIX) :])(scope, receive, send)
            return
        section = _section(path)
        if section is None:
            await self.app(scope, receive, send)
            return
        if path == "/" or is_navigation(Headers(scope=scope)):
            await self._index()(scope, receive, send)
            return
        await self.app(scope, receive, _vary_accept(send))

    def _index(self) -> Response:
        directory = self._dir()
        if directory is None:
            looked = [self.fixed] if self.fixed is not None else candidate_dirs()
            tried = ", ".join(str(p) for p in looked)
            return HTMLResponse(
                _NOT_BUILT.format(where=f" (looked in {_html_escape(tried)})"),
                headers={"Cache-Control": "no-cache", "Vary": "Accept"},
            )
        return FileResponse(
            directory / "index.html", media_type="text/html", headers=self._index_headers()
        )

    def _asset(self, relative: str) -> Response:
        directory = self._dir()
        not_found = Response("not found", status_code=404, media_type="text/plain")
        if directory is None or not relative or "\x00" in relative:
            return not_found
        root = (directory / "_portal").resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return not_found
        return FileResponse(
            target,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
            },
        )


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vary_accept(send: Send) -> Send:
    """Add ``Vary: Accept`` to an API response whose path is also a portal page."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = list(message.get("headers", []))
            existing = [v for k, v in headers if k.lower() == b"vary"]
            if not any(b"accept" in v.lower() for v in existing):
                headers.append((b"vary", b"Accept"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, or "" when it is not an http(s) URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
        c in parts.netloc for c in " ;'\""
    ):
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def mount_portal(app: FastAPI, directory: Path | None = None) -> Path | None:
    """Serve the portal from ``app`` (see the module docstring for the routing rules).

    ``directory`` pins the build directory (tests); by default it is looked up per request.
    Returns the build directory found now (``None`` when the portal is not built yet).
    """
    def connect_sources() -> list[str]:
        settings = getattr(app.state, "settings", None)
        url = getattr(getattr(settings, "ml", None), "public_url", None)
        return [url] if url else []

    app.add_middleware(PortalMiddleware, directory=directory, connect_sources=connect_sources)
    found = find_portal_dir([directory] if directory is not None else None)
    app.state.portal_dir = found
    return found
