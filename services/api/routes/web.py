"""The web page at ``/`` and its files: ``/web/<name>`` (script, styles, icon) and
``/favicon.ico``.

The files ship inside the package (``services/api/web``, no build step, no CDN) and are read
once. Each answer carries an ETag and ``Cache-Control: no-cache``: browsers revalidate on
every load (a 304 when unchanged), so a new release shows at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter, HTTPException, Request, Response

router = APIRouter(include_in_schema=False)

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """Every page file of ``services/api/web`` by its bare name, read once. A name from a URL
    is only ever looked up here, so no path is built from it and nothing grows with it."""
    folder = resources.files("services.api").joinpath("web")
    found = {}
    for file in folder.iterdir():
        suffix = PurePosixPath(file.name).suffix
        if file.is_file() and not file.name.startswith(".") and suffix in MEDIA_TYPES:
            body = file.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[file.name] = Asset(body=body, media_type=MEDIA_TYPES[suffix], etag=etag)
    return found


def serve(request: Request, name: str) -> Response:
    asset = assets().get(name)
    if asset is None:
        raise HTTPException(404, "Not Found")
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


@router.api_route("/", methods=["GET", "HEAD"])
async def web_page(request: Request) -> Response:
    return serve(request, "index.html")


@router.api_route("/favicon.ico", methods=["GET", "HEAD"])
async def favicon(request: Request) -> Response:
    return serve(request, "favicon.ico")


@router.api_route("/web/{name}", methods=["GET", "HEAD"])
async def web_file(request: Request, name: str) -> Response:
    return serve(request, name)
