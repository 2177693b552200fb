"""``make run``'s launcher (``python -m services.local``) as a user meets it: it fails fast with
one line naming the cause, and Ctrl-C stops everything in order without a traceback."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from services.local import free_port
from shared.bundled import bundled_names
from shared.manifest import Manifest
from tests.bundled_inputs import DATA, generate_requests, translate_inputs

pytestmark = pytest.mark.integration


def launch(
    tmp_path: Path, port: int, *, sigint_ignored: bool = False, **env: str
) -> subprocess.Popen[str]:
    """The launcher in a session of its own, as a terminal's foreground job would be;
    ``sigint_ignored``: as a shell's background job would be (SIGINT inherited ignored)."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "services.local", "--port", str(port), "--var-dir", str(tmp_path)],
        env={**os.environ, "S2I_REDIS_URL": "", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str, float]:
    start = time.monotonic()
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out, time.monotonic() - start


def stopped_in_order(out: str) -> list[str]:
    """The children the launcher's output says it stopped, in that order."""
    return [line.rsplit("stopped ", 1)[1] for line in out.splitlines() if " stopped " in line]


def error_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if " ERROR " in line]


def test_a_launcher_started_as_a_background_job_still_stops_on_sigint(tmp_path: Path) -> None:
    """`make run &` or a script under nohup: SIGINT arrives ignored, Ctrl-C must still work."""
    port = free_port()
    proc = launch(tmp_path, port, sigint_ignored=True, S2I_MODELS="sketch2photo")
    try:
        wait_ready(proc, port)
        os.killpg(proc.pid, signal.SIGINT)
        code, out, _ = finish(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0, out
    assert stopped_in_order(out) == ["api", "worker0", "redis"], out


def test_unreachable_redis_is_named_within_seconds(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    code, out, took = finish(launch(tmp_path, free_port(), S2I_REDIS_URL=url), 30)
    assert code == 2
    assert took < 15
    (line,) = error_lines(out)
    assert f"Redis at {url} is unreachable" in line
    assert "Traceback" not in out


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, took = finish(launch(tmp_path, port), 30)
    assert code == 2
    assert took < 15
    (line,) = error_lines(out)
    assert f"port {port} is in use" in line


def test_unwritable_model_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    models = blocker / "models"
    code, out, _ = finish(launch(tmp_path, free_port(), S2I_MODEL_ROOT=str(models)), 30)
    assert code == 2
    (line,) = error_lines(out)
    assert f"model folder {models} is not writable" in line


def no_torch(tmp_path: Path) -> str:
    """A PYTHONPATH entry whose ``torch`` fails to import: serving must not need it."""
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    return str(blocker.parent)


def wait_ready(proc: subprocess.Popen[str], port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the stack did not get ready"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)


def check_style(base: str) -> None:
    """photo2sketch draws the style asked for; a style where none applies is handled."""
    photo = (DATA / "fs2k/photo1-image0001.jpg").read_bytes()
    sketch = (DATA / "fs2k/sketch1-sketch0001.jpg").read_bytes()

    def post(image: bytes, **fields: str) -> httpx.Response:
        return httpx.post(base + "/v1/translate", files={"image": ("x.jpg", image)},
                          data=fields, timeout=60)  # fmt: skip

    styles = {v: post(photo, model="photo2sketch", style=v) for v in ("1", "3")}
    assert all(r.status_code == 200 for r in styles.values())
    one, three = (np.asarray(Image.open(io.BytesIO(styles[v].content)), float) for v in "13")
    assert np.abs(one - three).mean() > 2  # the styles differ
    assert post(photo, model="photo2sketch", style="7").status_code == 422
    assert post(sketch, model="sketch2photo", style="2").status_code == 422  # takes no style
    routed = post(sketch, style="2")  # auto: a drawing goes to sketch2photo, style dropped
    assert routed.status_code == 200
    assert routed.headers["x-model"] == "sketch2photo"


def child_pid(launcher: subprocess.Popen[str], marker: str) -> int | None:
    """The pid of the launcher's child whose command line contains ``marker``, if any."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if marker in cmdline and int(stat[1]) == launcher.pid:  # field 4: the parent's pid
            return int(proc.name)
    return None


def restarted_after_kill(launcher: subprocess.Popen[str], marker: str, timeout: float) -> int:
    """SIGKILL the child, then wait for the launcher to start a new one; its pid."""
    old = child_pid(launcher, marker)
    assert old is not None, marker
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while (new := child_pid(launcher, marker)) in (None, old):
        assert time.monotonic() < deadline, f"{marker} was not started again"
        time.sleep(0.2)
    assert new is not None
    return new


def call_once(base: str, manifest: Manifest) -> httpx.Response:
    """One request to the model as a user sends it: its first fixed input or seed."""
    if manifest.task == "generate":
        seed, class_name = generate_requests(manifest)[0]
        body = {"model": manifest.name, "seed": seed, "class_name": class_name}
        return httpx.post(base + "/v1/generate", json=body, timeout=60)
    image = translate_inputs(manifest)[0]
    return httpx.post(
        base + "/v1/translate",
        files={"image": (image.name, image.read_bytes())},
        data={"model": manifest.name},
        timeout=60,
    )


def test_make_run_serves_every_bundled_model_without_torch_and_stops_in_order(
    tmp_path: Path,
) -> None:
    port = free_port()
    proc = launch(tmp_path, port, PYTHONPATH=no_torch(tmp_path))
    try:
        wait_ready(proc, port)
        base = f"http://127.0.0.1:{port}"
        listed = {m["name"]: m for m in httpx.get(base + "/v1/models").json()["models"]}
        assert set(bundled_names()) <= set(listed)
        for name in bundled_names():
            r = call_once(base, Manifest.model_validate(listed[name]))
            assert r.status_code == 200, (name, r.text)
            out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
            assert out.std() > 10, name  # an image, not a blank
        check_style(base)
        redis_pid = child_pid(proc, "redis-server")
        restarted_after_kill(proc, "-m services.worker", timeout=30)  # a crashed worker
        sketch = (DATA / "fs2k/sketch1-sketch0001.jpg").read_bytes()
        again = httpx.post(base + "/v1/translate", files={"image": ("s.jpg", sketch)}, timeout=90)
        assert again.status_code == 200  # served by the new worker
        assert child_pid(proc, "redis-server") == redis_pid  # Redis kept running
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the terminal's process group
        code, out, _ = finish(proc, 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code == 0
    assert "worker0 exited with code -9" in out
    assert "starting it again in 1 s" in out
    assert stopped_in_order(out) == ["api", "worker0", "redis"], out
    for log in (tmp_path / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, f"{log.name}:\n{text[-2000:]}"
        assert "ConnectionError" not in text, log.name
