"""A training run started through the API publishes a version the running workers serve."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import ADMIN_KEY
from tests.images import sketch_png

pytestmark = pytest.mark.integration
ADMIN = {"X-API-Key": ADMIN_KEY}


def test_training_run_publishes_a_version_that_is_hot_reloaded(client: httpx.Client) -> None:
    body = {
        "recipe": "pix2pix",
        "dataset": "synthetic://16",
        "overrides": {
            "model_name": "trained-demo",
            "image_size": 32,
            "batch_size": 4,
            "max_steps": 6,
            "num_workers": 0,
            "eval_samples": 8,
            "publish": "always",
            "options": {"ngf": 8, "ndf": 8},
        },
    }
    r = client.post("/v1/trainings", json=body, headers=ADMIN)
    assert r.status_code == 202, r.text
    location = r.headers["location"]
    deadline = time.monotonic() + 240
    while (run := client.get(location, headers=ADMIN).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.5)
    assert run["state"] == "succeeded", run
    published = run["progress"]["published"]
    assert [p["model"] for p in published] == ["trained-demo"]
    version = published[0]["version"]
    assert published[0]["served"] is True
    assert run["progress"]["step"] == 6
    # the worker picks the new model up from the volume, without a restart
    deadline = time.monotonic() + 30
    while client.get("/v1/models/trained-demo").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    out = client.post(
        "/v1/translate", files={"image": ("s.png", sketch_png())}, data={"model": "trained-demo"}
    )
    assert out.status_code == 200, out.text
    assert out.headers["x-model-version"] == str(version)


def test_trainings_need_the_admin_key_and_a_safe_dataset(client: httpx.Client) -> None:
    body = {"recipe": "pix2pix", "dataset": "synthetic://4"}
    assert client.post("/v1/trainings", json=body).status_code == 401
    for bad in ("../etc", "/abs/path", "a/../../b", ".hidden"):
        r = client.post("/v1/trainings", json={**body, "dataset": bad}, headers=ADMIN)
        assert r.status_code == 422, bad
        assert r.headers["content-type"] == "application/problem+json"
    r = client.post("/v1/trainings", json={**body, "recipe": "nope"}, headers=ADMIN)
    assert r.status_code == 422


def test_cancel_a_queued_or_running_training(client: httpx.Client) -> None:
    body = {
        "recipe": "pix2pix",
        "dataset": "synthetic://8",
        "overrides": {
            "model_name": "never-served",
            "image_size": 32,
            "max_steps": 100000,
            "num_workers": 0,
            "options": {"ngf": 8, "ndf": 8},
        },
    }
    r = client.post("/v1/trainings", json=body, headers=ADMIN)
    location = r.headers["location"]
    deadline = time.monotonic() + 120
    while not (run := client.get(location, headers=ADMIN).json()).get("progress", {}).get("step"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    r = client.delete(location, headers=ADMIN)
    assert r.status_code == 202  # running: it stops at its next step
    assert r.json()["state"] == "canceling"
    while (run := client.get(location, headers=ADMIN).json())["state"] != "canceled":
        assert run["state"] in ("running", "canceling"), run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    again = client.delete(location, headers=ADMIN)
    assert again.status_code == 200  # idempotent
    assert again.json()["state"] == "canceled"
    assert client.get("/v1/models/never-served").status_code == 404
