"""The user's path through the running stack: translate (sync, async, JSON), jobs, models."""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from shared.backends import load_backend
from shared.image_ops import from_array
from shared.images import decode
from shared.model_input import model_input
from shared.registry import Registry
from tests.images import photo_png, sketch_png

pytestmark = pytest.mark.integration


def test_sync_multipart_returns_a_png_made_by_the_model(client: httpx.Client) -> None:
    r = client.post(
        "/v1/translate",
        files={"image": ("s.png", sketch_png(), "image/png")},
        data={"model": "sketch2photo"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-model"] == "sketch2photo"
    assert r.headers["x-model-version"] == "1"
    assert len(r.headers["x-job-id"]) == 32
    assert float(r.headers["x-compute-ms"]) > 0
    assert float(r.headers["x-queue-ms"]) >= 0
    out = Image.open(io.BytesIO(r.content))
    assert out.size == (128, 128)
    # a generator's output, not the input echoed back
    assert out.tobytes() != Image.open(io.BytesIO(sketch_png())).convert("RGB").tobytes()


def test_a_large_jpeg_gets_the_served_models_answer_for_it(
    client: httpx.Client, registry: Registry
) -> None:
    """The API decodes the upload once and hands the worker its pixels fitted to the model
    (``shared.fitted_input``): the answer is the served graph's output for the upload, within
    the resampling difference of the API's reduced JPEG decode."""
    photo = Image.open(io.BytesIO(photo_png(2, size=256))).convert("RGB").resize((1200, 900))
    upload = io.BytesIO()
    photo.save(upload, "JPEG", quality=92)

    r = client.post(
        "/v1/translate",
        files={"image": ("p.jpg", upload.getvalue(), "image/jpeg")},
        data={"model": "sketch2photo"},
    )

    assert r.status_code == 200, r.text
    version = int(r.headers["x-model-version"])
    manifest = registry.manifest("sketch2photo", version)
    backend = load_backend(registry.version_dir("sketch2photo", version), manifest,
                           device="cpu", intra_op_threads=1)  # fmt: skip
    try:
        full = decode(upload.getvalue(), max_bytes=1 << 24, max_pixels=1 << 24)
        expected = np.asarray(from_array(backend.run(model_input(full, manifest.input)[None])[0]))
    finally:
        backend.close()
    answer = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert answer.shape == expected.shape
    assert np.abs(answer.astype(np.int16) - expected).mean() < 1.0  # grey levels of 255


def test_auto_routes_drawings_and_photos_to_opposite_models(client: httpx.Client) -> None:
    drawing = client.post("/v1/translate", files={"image": ("s.png", sketch_png(1))})
    photo = client.post("/v1/translate", files={"image": ("p.png", photo_png(1))})
    assert drawing.status_code == photo.status_code == 200
    assert drawing.headers["x-model"] == "sketch2photo"
    assert photo.headers["x-model"] == "photo2sketch"
    assert drawing.headers["x-routed-by"].startswith("auto: drawing")
    assert photo.headers["x-routed-by"].startswith("auto: photo")


@pytest.mark.parametrize(("fmt", "pil_format"), [("jpeg", "JPEG"), ("webp", "WEBP")])
def test_output_format_and_keep_aspect(client: httpx.Client, fmt: str, pil_format: str) -> None:
    wide = Image.open(io.BytesIO(sketch_png(2, 128))).resize((256, 128))
    buf = io.BytesIO()
    wide.save(buf, "PNG")
    r = client.post(
        "/v1/translate",
        files={"image": ("w.png", buf.getvalue())},
        data={"model": "sketch2photo", "format": fmt, "keep_aspect": "true"},
    )
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.format == pil_format
    assert abs(out.size[0] / out.size[1] - 2.0) < 0.05


def test_json_body_and_json_answer(client: httpx.Client) -> None:
    body = {"image": base64.b64encode(sketch_png()).decode(), "model": "sketch2photo"}
    r = client.post("/v1/translate", json=body, headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["job"]["state"] == "succeeded"
    assert data["job"]["version"] == 1
    assert data["media_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(data["image"]))).size == (128, 128)


@pytest.mark.parametrize("size", [(300, 200), (97, 160)])
def test_output_size_input_returns_the_input_size(
    client: httpx.Client, size: tuple[int, int]
) -> None:
    drawing = Image.open(io.BytesIO(sketch_png(3, 128))).resize(size)
    buf = io.BytesIO()
    drawing.save(buf, "PNG")
    r = client.post(
        "/v1/translate",
        files={"image": ("d.png", buf.getvalue())},
        data={"model": "sketch2photo", "output_size": "input"},
    )
    assert r.status_code == 200, r.text
    assert Image.open(io.BytesIO(r.content)).size == size
    default = client.post("/v1/translate", files={"image": ("d.png", buf.getvalue())})
    assert Image.open(io.BytesIO(default.content)).size == (128, 128)  # the model's size


def test_async_accepted_then_poll_then_result(client: httpx.Client) -> None:
    r = client.post(
        "/v1/translate",
        files={"image": ("s.png", sketch_png())},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    assert location == f"/v1/jobs/{r.json()['id']}"
    deadline = time.monotonic() + 30
    while (status := client.get(location).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["state"] == "succeeded"
    assert status["timings"]["finished_at"] >= status["timings"]["created_at"]
    result = client.get(status["result_url"])
    assert result.status_code == 200
    assert result.headers["x-model"] == "sketch2photo"
    assert Image.open(io.BytesIO(result.content)).format == "PNG"
    finished = client.delete(location)
    assert finished.status_code == 409
    assert finished.json()["type"].endswith("job-finished")
    assert "succeeded" in finished.json()["detail"]


def test_idempotency_key_returns_the_same_job(client: httpx.Client) -> None:
    headers = {"Idempotency-Key": f"test-{time.time_ns()}"}
    first = client.post(
        "/v1/translate?async=true", files={"image": ("s.png", sketch_png())}, headers=headers
    )
    second = client.post(
        "/v1/translate?async=true", files={"image": ("s.png", sketch_png())}, headers=headers
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    other = client.post(  # the same key for another image is refused, not answered wrongly
        "/v1/translate?async=true", files={"image": ("p.png", photo_png())}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["type"].endswith("idempotency-key-reused")


def test_idempotency_keys_are_scoped_per_caller(client: httpx.Client) -> None:
    key = f"shared-{time.time_ns()}"
    ids = {
        who: client.post(
            "/v1/translate?async=true",
            files={"image": ("s.png", sketch_png())},
            headers={"Idempotency-Key": key, "X-API-Key": who},
        ).json()["id"]
        for who in ("alice", "bob")
    }
    assert ids["alice"] != ids["bob"]


def test_an_idempotent_retry_runs_again_when_the_first_expired_unrun(
    client: httpx.Client,
) -> None:
    headers = {"Idempotency-Key": f"retry-{time.time_ns()}"}
    files = {"image": ("s.png", sketch_png())}
    first = client.post("/v1/translate?async=true&timeout=0.001", files=files, headers=headers)
    deadline = time.monotonic() + 30
    while (status := client.get(first.headers["location"]).json())["state"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["state"] == "expired"
    retry = client.post("/v1/translate", files=files, headers=headers)
    assert retry.status_code == 200
    assert retry.headers["x-job-id"] != first.json()["id"]


def test_deadline_passed_gives_504_and_the_job_is_not_run(client: httpx.Client) -> None:
    r = client.post(
        "/v1/translate",
        files={"image": ("s.png", sketch_png())},
        headers={"X-Request-Timeout": "0.001"},
    )
    assert r.status_code == 504
    assert r.headers["content-type"] == "application/problem+json"
    deadline = time.monotonic() + 30  # the worker marks it when it reaches it in the queue
    while (job := client.get(f"/v1/jobs/{r.json()['job_id']}").json())["state"] == "queued":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert job["state"] == "expired"
    assert job["timings"]["started_at"] is None


def test_models_endpoints_and_docs(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    names = {m["name"]: m for m in models["models"]}
    assert {"sketch2photo", "photo2sketch"} <= set(names)
    assert names["sketch2photo"]["input"]["height"] == 128
    assert models["defaults"] == {"sketch2photo": "sketch2photo", "photo2sketch": "photo2sketch"}
    one = client.get("/v1/models/photo2sketch").json()
    assert one["task"] == "photo2sketch"
    assert one["version"] >= 1
    missing = client.get("/v1/models/nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path, method in [
        ("/v1/translate", "post"),
        ("/v1/generate", "post"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/jobs/{job_id}", "delete"),
        ("/v1/jobs/{job_id}/result", "get"),
        ("/v1/models", "get"),
        ("/v1/models/{name}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
    ]:
        assert method in paths[path], (path, method)
    body = paths["/v1/translate"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    assert "TranslateJSON" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/v1/models", "/healthz"])
def test_security_headers_and_no_server_banner(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "server" not in r.headers  # no "uvicorn" banner
