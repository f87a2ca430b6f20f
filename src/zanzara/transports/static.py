"""A folder of files served over plain HTTP on a WebSocket listener (Mosca's ``http.static``).

A small web app and the broker it talks to then share one origin: the page,
its scripts and the MQTT-over-WebSocket endpoint all come from the same
host and port, so the browser needs no CORS or mixed-content exceptions.

Only GET and HEAD of regular files inside the folder are answered.  Anything
that could reach outside it (a ``..`` segment, percent-encoded or not; a
symbolic link that resolves elsewhere; a NUL byte) is answered 404, exactly
like a missing file, so that a probe learns nothing about the file system.
Every response closes the connection: ``websockets`` speaks one HTTP request
per connection before the upgrade, which is plenty for a small app's assets.

This module builds ``websockets`` HTTP responses and reads files; it must not
import the broker or the configuration.
"""

from __future__ import annotations

import asyncio
import http
import logging
import mimetypes
import os
from pathlib import Path
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["StaticFolder"]

logger = logging.getLogger(__name__)

_INDEX = "index.html"
_ALLOWED = "GET, HEAD"
# Python's built-in table only, not /etc/mime.types: the same file gets the
# same Content-Type on every host.
_TYPES = mimetypes.MimeTypes()


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
