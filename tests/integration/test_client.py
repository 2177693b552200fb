"""shared.client and the ``s2i`` command against the running stack."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from services.local import LocalStack, free_port
from shared.client import BadInput, NotFound, Sketch2ImageClient
from tests.helpers import s2i_cli as cli
from tests.images import sketch_png

pytestmark = pytest.mark.integration


@pytest.fixture
def s2i(stack: LocalStack) -> Iterator[Sketch2ImageClient]:
    with Sketch2ImageClient(stack.base_url, timeout=60) as c:
        yield c


def test_translate_returns_the_models_png(s2i: Sketch2ImageClient) -> None:
    out = s2i.translate(sketch_png(), model="sketch2photo")
    assert (out.model, out.version, out.media_type) == ("sketch2photo", 1, "image/png")
    assert len(out.job_id) == 32
    assert out.compute_ms is not None
    assert out.compute_ms > 0
    image = Image.open(io.BytesIO(out.image))
    assert (image.format, image.size) == ("PNG", (128, 128))
    auto = s2i.translate(sketch_png(1))  # model=auto says where it went
    assert auto.model == "sketch2photo"
    assert (auto.routed_by or "").startswith("auto: drawing")


def test_text_file_is_bad_input_415(s2i: Sketch2ImageClient, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not an image at all")
    with pytest.raises(BadInput) as info:
        s2i.translate(notes)
    exc = info.value
    assert exc.status == 415
    assert exc.type.endswith("unsupported-format")
    assert str(exc).startswith("415 The image format is not supported: ")
    assert "\n" not in str(exc)
    assert len(exc.detail) > 10


def test_unknown_model_is_not_found(s2i: Sketch2ImageClient) -> None:
    with pytest.raises(NotFound, match=r"^404 .*nope.*sketch2photo") as info:
        s2i.translate(sketch_png(), model="nope")
    assert info.value.type.endswith("unknown-model")
    with pytest.raises(NotFound):
        s2i.model("nope")


def test_async_translate_wait_result(s2i: Sketch2ImageClient) -> None:
    job = s2i.translate_async(sketch_png(2), model="sketch2photo", format="webp")
    assert job.state in ("queued", "running", "succeeded")
    done = s2i.wait(job.id, poll_s=0.1, timeout=60)
    assert done.state == "succeeded", done.raw
    assert done.compute_ms is not None
    assert Image.open(io.BytesIO(s2i.result(job.id))).format == "WEBP"
    assert s2i.job(job.id).result_url == f"/v1/jobs/{job.id}/result"


def test_models_health_ready(s2i: Sketch2ImageClient) -> None:
    names = {m["name"]: m for m in s2i.models()}
    assert {"sketch2photo", "photo2sketch"} <= set(names)
    assert names["sketch2photo"]["task"] == "sketch2photo"
    assert s2i.model("sketch2photo")["input"]["height"] == 128
    assert s2i.health() == {"status": "ok"}
    assert s2i.ready()["status"] == "ready"


def test_cli_translate_writes_the_image_and_one_line(stack: LocalStack, tmp_path: Path) -> None:
    drawing = tmp_path / "drawing.png"
    drawing.write_bytes(sketch_png(3))
    run = cli("--url", stack.base_url, "translate", str(drawing))
    assert run.returncode == 0, run.stderr
    out = tmp_path / "drawing-out.png"
    assert Image.open(out).format == "PNG"
    assert run.stdout.startswith(f"wrote {out} (sketch2photo v1, auto: drawing (")
    assert run.stdout.endswith(" ms)\n")
    assert run.stdout.count("\n") == 1
    jpeg = cli("--url", stack.base_url, "translate", str(drawing), "--format", "jpeg", "-o",
               str(tmp_path / "x.jpg"), "--model", "photo2sketch")  # fmt: skip
    assert jpeg.returncode == 0, jpeg.stderr
    assert Image.open(tmp_path / "x.jpg").format == "JPEG"
    assert "(photo2sketch v1, " in jpeg.stdout


def test_cli_api_error_is_one_line_exit_1(stack: LocalStack, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    run = cli("--url", stack.base_url, "translate", str(notes))
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.startswith("error: 415 The image format is not supported: ")
    assert run.stderr.count("\n") == 1


def test_cli_against_a_closed_port_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    run = cli("--url", url, "models")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith(f"error: cannot reach {url}")


def test_cli_models_prints_a_table(stack: LocalStack) -> None:
    run = cli("--url", stack.base_url, "models")
    assert run.returncode == 0, run.stderr
    header, *rows = run.stdout.splitlines()
    assert header.split() == ["NAME", "TASK", "VERSION", "INPUT"]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert by_name["sketch2photo"] == ["sketch2photo", "sketch2photo", "1", "128x128"]
    assert "photo2sketch" in by_name


def test_cli_jobs_shows_and_cancels(stack: LocalStack, s2i: Sketch2ImageClient) -> None:
    job = s2i.translate_async(sketch_png(4), model="sketch2photo")
    s2i.wait(job.id, timeout=60)
    shown = cli("--url", stack.base_url, "jobs", job.id)
    assert shown.returncode == 0, shown.stderr
    assert f'"id": "{job.id}"' in shown.stdout
    assert '"state": "succeeded"' in shown.stdout
    # a finished job cannot be canceled: 409, one line, exit 1
    late = cli("--url", stack.base_url, "jobs", job.id, "--cancel")
    assert late.returncode == 1
    assert late.stderr.startswith("error: 409 The job already finished: ")
    assert late.stderr.count("\n") == 1
    missing = cli("--url", stack.base_url, "jobs", "0" * 32)
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: 404 Unknown job: no job 0000")
