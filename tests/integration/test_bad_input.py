"""Bad input gets the right 4xx problem+json, and the worker keeps serving afterwards."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from tests.images import huge_header_png, photo_png, sketch_png

pytestmark = pytest.mark.integration


def assert_problem(r: httpx.Response, status: int, type_suffix: str) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status
    assert body["type"].endswith(type_suffix)
    assert body["detail"]
    return body  # type: ignore[no-any-return]


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "GIF")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("payload", "status", "kind"),
    [
        (b"this is not an image at all", 415, "unsupported-format"),
        (b"\x00\x01garbage" * 100, 400, "unreadable-image"),
        (photo_png()[: len(photo_png()) // 2], 400, "unreadable-image"),
        (huge_header_png(), 413, "image-too-large"),
        (gif_bytes(), 415, "unsupported-format"),
    ],
    ids=["text", "garbage", "truncated-png", "huge-header", "gif"],
)
def test_bad_images(client: httpx.Client, payload: bytes, status: int, kind: str) -> None:
    r = client.post("/v1/translate", files={"image": ("x.png", payload)})
    assert_problem(r, status, kind)


def test_oversize_upload_is_413(client: httpx.Client) -> None:
    r = client.post("/v1/translate", files={"image": ("big.png", b"\x89PNG" + b"0" * 11_000_000)})
    assert_problem(r, 413, "image-too-large")


def test_unknown_model_and_version_are_404(client: httpx.Client) -> None:
    body = sketch_png()
    r = client.post("/v1/translate", files={"image": ("s.png", body)}, data={"model": "nope"})
    assert "sketch2photo" in assert_problem(r, 404, "unknown-model")["detail"]
    r = client.post(
        "/v1/translate",
        files={"image": ("s.png", body)},
        data={"model": "sketch2photo", "version": "999"},
    )
    assert_problem(r, 404, "unknown-model")


@pytest.mark.parametrize(
    "fields",
    [
        {"format": "gif"},
        {"model": "../etc"},
        {"version": "0"},
        {"timeout": "-1"},
        {"keep_aspect": "maybe"},
    ],
)
def test_bad_fields_are_422(client: httpx.Client, fields: dict[str, str]) -> None:
    r = client.post("/v1/translate", files={"image": ("s.png", sketch_png())}, data=fields)
    assert_problem(r, 422, "invalid-request")


def test_bad_bodies(client: httpx.Client) -> None:
    assert_problem(
        client.post("/v1/translate", content=b"x", headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    assert_problem(
        client.post("/v1/translate", json={"image": "%%%not base64"}), 400, "unreadable-image"
    )
    assert_problem(client.post("/v1/translate", json={"picture": "x"}), 422, "invalid-request")
    assert_problem(
        client.post("/v1/translate", files={"other": ("s.png", b"x")}), 422, "invalid-request"
    )
    assert_problem(client.get("/v1/jobs/" + "0" * 32), 404, "unknown-job")
    # a data: URL without a comma has no payload (was a 500 IndexError)
    assert_problem(
        client.post("/v1/translate", json={"image": "data:xyz"}), 400, "unreadable-image"
    )
    encoded = base64.b64encode(sketch_png()).decode()
    for version in (True, 1.5):  # JSON true is not version 1
        r = client.post("/v1/translate", json={"image": encoded, "version": version})
        assert_problem(r, 422, "invalid-request")


def test_worker_keeps_serving_after_bad_input(client: httpx.Client) -> None:
    for payload in (b"junk", photo_png()[:1000], huge_header_png()):
        client.post("/v1/translate", files={"image": ("x.png", payload)})
    r = client.post(
        "/v1/translate", files={"image": ("s.png", sketch_png())}, data={"model": "sketch2photo"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
