"""Files served over plain HTTP on a WebSocket listener: a folder (Mosca's ``http.static``) and
MQTT.js's browser bundle shipped in the package (Mosca's ``http.bundle``).

A small web app and the broker it talks to then share one origin: the page,
its scripts and the MQTT-over-WebSocket endpoint all come from the same
host and port, so the browser needs no CORS or mixed-content exceptions.

Only GET and HEAD of regular files inside the folder are answered.  Anything
that could reach outside it (a ``..`` segment, percent-encoded or not; a
symbolic link that resolves elsewhere; a NUL byte) is answered 404, exactly
like a missing file, so that a probe learns nothing about the file system.
Every response closes the connection: ``websockets`` speaks one HTTP request
per connection before the upgrade, which is plenty for a small app's assets.

The bundle (:func:`mqtt_js`, ``src/zanzara/static/mqtt.min.js``, refreshed by
``scripts/update-mqtt-js.sh``) is read and compressed once per process and is
cacheable: an ETag from its content, revalidated with If-None-Match (304), and
gzip for the clients that accept it.

This module builds ``websockets`` HTTP responses and reads files; it must not
import the broker or the configuration.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import hashlib
import http
import logging
import mimetypes
import os
from importlib import resources
from pathlib import Path
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["MQTT_JS_PATH", "PackagedFile", "StaticFolder", "mqtt_js"]

logger = logging.getLogger(__name__)

_INDEX = "index.html"
_ALLOWED = "GET, HEAD"
# Python's built-in table only, not /etc/mime.types: the same file gets the
# same Content-Type on every host.
_TYPES = mimetypes.MimeTypes()
# Where a listener with `bundle = true` serves MQTT.js (Mosca served its bundle at /mqtt.js;
# the file's own name is what MQTT.js's documentation has pages load).
MQTT_JS_PATH = "/mqtt.min.js"
# Cached for a day, then revalidated (its ETag changes only when zanzara ships another one).
_BUNDLE_CACHE_CONTROL = "public, max-age=86400"


class StaticFolder:
    """Answers HTTP GET/HEAD requests with the files under ``root``."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        # Resolved once: the containment check compares resolved paths.
        self.root = Path(root).resolve()

    async def respond(self, request: Request) -> Response:
        """The response to ``request`` (any method; only GET and HEAD find files)."""
        if request.method not in ("GET", "HEAD"):
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n")
            response.headers["Allow"] = _ALLOWED
            return response
        file = self.locate(request.path)
        if file is None:
            return _not_found()
        # A thread, so that a large file or a slow disk does not stall every MQTT client.
        try:
            body = await asyncio.to_thread(file.read_bytes)
        except OSError as exc:  # removed or made unreadable since locate()
            logger.debug("static file %s unreadable: %s", file, exc)
            return _not_found()
        content_type, _ = _TYPES.guess_type(file.name, strict=False)
        headers = Headers(
            [
                ("Content-Type", content_type or "application/octet-stream"),
                ("Content-Length", str(len(body))),
                # Browsers must not reinterpret a file as another type (a .txt run as script).
                ("X-Content-Type-Options", "nosniff"),
                ("Connection", "close"),
            ]
        )
        # [RFC 9110 9.3.2] HEAD: the headers GET would send, without the content.
        return Response(http.HTTPStatus.OK, "OK", headers, b"" if request.method == "HEAD" else body)

    def locate(self, target: str) -> Path | None:
        """The regular file inside ``root`` that request target ``target`` names, if any."""
        path = target.partition("?")[0].partition("#")[0]
        if not path.startswith("/"):
            return None  # absolute-form ("http://host/x") or "*"
        # Decoded before splitting: "%2e%2e" and "%2F" are checked as the ".." and "/" they mean.
        try:
            decoded = unquote(path, errors="strict")
        except UnicodeDecodeError:  # percent-encoded bytes that are not UTF-8
            return None
        if "\x00" in decoded or "\\" in decoded:
            return None
        segments = [segment for segment in decoded.split("/") if segment]
        if any(segment in (".", "..") for segment in segments):
            return None
        candidate = self.root.joinpath(*segments)
        try:
            if candidate.is_dir():
                candidate = candidate / _INDEX
            # Symbolic links are followed, but must land inside the folder.
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if not resolved.is_relative_to(self.root) or not resolved.is_file():
            return None
        return resolved


class PackagedFile:
    """One file shipped in the package, answered at one path for HTTP GET and HEAD."""

    __slots__ = ("_body", "_content_type", "_etag", "_gzipped", "path")

    def __init__(self, path: str, body: bytes, content_type: str) -> None:
        self.path = path
        self._body = body
        self._content_type = content_type
        self._etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        self._gzipped = gzip.compress(body, mtime=0)

    def serves(self, target: str) -> bool:
        """Is ``target`` (a request target, with any query) this file's path?"""
        return target.partition("?")[0] == self.path

    def respond(self, request: Request) -> Response:
        """The response to a request for :attr:`path`: the file, 304, or 405 for other methods."""
        if request.method not in ("GET", "HEAD"):
            response = _text(http.HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n")
            response.headers["Allow"] = _ALLOWED
            return response
        headers = Headers(
            [
                ("ETag", self._etag),
                ("Cache-Control", _BUNDLE_CACHE_CONTROL),
                ("Vary", "Accept-Encoding"),
                ("Connection", "close"),
            ]
        )
        # [RFC 9110 13.1.2] If-None-Match: a list of entity tags, or "*"; weak comparison.
        tags = request.headers.get("If-None-Match", "").split(",")
        wanted = {tag.strip().removeprefix("W/") for tag in tags}
        if self._etag in wanted or "*" in wanted:
            # [RFC 9110 15.4.5] 304: the validators and Cache-Control, no content.
            return Response(http.HTTPStatus.NOT_MODIFIED, "Not Modified", headers, b"")
        body = self._body
        if _accepts_gzip(request.headers.get("Accept-Encoding", "")):
            body = self._gzipped
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = self._content_type
        headers["Content-Length"] = str(len(body))
        headers["X-Content-Type-Options"] = "nosniff"
        # [RFC 9110 9.3.2] HEAD: the headers GET would send, without the content.
        return Response(http.HTTPStatus.OK, "OK", headers, b"" if request.method == "HEAD" else body)


@functools.cache
def mqtt_js() -> PackagedFile:
    """MQTT.js's browser bundle from the package (read and compressed once per process)."""
    body = (resources.files("zanzara") / "static" / "mqtt.min.js").read_bytes()
    return PackagedFile(MQTT_JS_PATH, body, "application/javascript; charset=utf-8")


def _accepts_gzip(accept_encoding: str) -> bool:
    """[RFC 9110 12.5.3] gzip is acceptable if listed (or "*" is) without q=0."""
    anything = False
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return _quality(params) > 0
        if coding == "*":
            anything = _quality(params) > 0
    return anything


def _quality(params: str) -> float:
    for param in params.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 1.0  # unparsable: as if absent
    return 1.0


def _not_found() -> Response:
    return _text(http.HTTPStatus.NOT_FOUND, "Not Found\n")


def _text(status: http.HTTPStatus, text: str) -> Response:
    body = text.encode()
    headers = Headers(
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
