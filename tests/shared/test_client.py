"""shared.client without a server: error mapping, headers, request shape (httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import json
import time
import tomllib
from collections.abc import Callable
from importlib import import_module
from pathlib import Path

import httpx
import pytest

from shared import client_cli
from shared.client import (
    ApiError,
    BadInput,
    Conflict,
    ConnectionFailed,
    DeadlineExceeded,
    NotFound,
    Overloaded,
    S2IError,
    ServerError,
    Sketch2ImageClient,
    WaitTimeout,
    parse_retry_after,
)

Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler) -> Sketch2ImageClient:
    return Sketch2ImageClient("http://s2i.test", transport=httpx.MockTransport(handler))


def problem(status: int, title: str = "Title", detail: str = "detail", **headers: str) -> Handler:
    body = {"type": f"urn:sketch2image:problem:x{status}", "title": title, "status": status}
    body["detail"] = detail

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            status,
            json=body,
            headers={"content-type": "application/problem+json", **headers},
        )

    return handler


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadInput),
        (413, BadInput),
        (415, BadInput),
        (422, BadInput),
        (404, NotFound),
        (409, Conflict),
        (429, Overloaded),
        (503, Overloaded),
        (504, DeadlineExceeded),
        (500, ServerError),
        (502, ServerError),
        (401, ApiError),
        (410, ApiError),
    ],
)
def test_each_status_maps_to_its_class(status: int, cls: type[ApiError]) -> None:
    with make_client(problem(status)) as c, pytest.raises(cls) as info:
        c.model("sketch2photo")
    exc = info.value
    assert type(exc) is cls
    assert isinstance(exc, S2IError)
    assert exc.status == status
    assert exc.type == f"urn:sketch2image:problem:x{status}"
    assert (exc.title, exc.detail) == ("Title", "detail")


def test_message_reads_status_title_detail() -> None:
    detail = "model: String should match pattern '^(auto|[a-z0-9][a-z0-9-]{0,63})$'"
    c = make_client(problem(422, "Some fields are invalid", detail))
    with pytest.raises(BadInput) as info:
        c.translate(b"png", model="Bad Model")
    assert str(info.value) == f"422 Some fields are invalid: {detail}"


def test_retry_after_seconds_and_http_date() -> None:
    c = make_client(problem(429, **{"Retry-After": "3"}))
    with pytest.raises(Overloaded) as info:
        c.translate(b"png")
    assert info.value.retry_after == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(0, usegmt=True)) == 0.0


def test_non_json_error_body_is_handled() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        html = "<html><body><h1>502 Bad Gateway</h1>\n  nginx</body></html>"
        return httpx.Response(502, text=html, headers={"content-type": "text/html"})

    with make_client(handler) as c, pytest.raises(ServerError) as info:
        c.health()
    exc = info.value
    assert exc.status == 502
    assert exc.title == "Bad Gateway"
    assert "nginx" in exc.detail
    assert "\n" not in str(exc)
    assert str(exc).startswith("502 Bad Gateway: <html>")


def test_json_body_that_is_not_an_object_and_title_only_problem() -> None:
    c = make_client(lambda r: httpx.Response(500, json=["oops"]))
    with pytest.raises(ServerError, match=r"^500 Internal Server Error: \[\"oops\"\]$"):
        c.health()
    c = make_client(problem(404, "Not Found", "Not Found"))
    with pytest.raises(NotFound) as info:
        c.job("0" * 32)
    assert str(info.value) == "404 Not Found"


def test_transport_errors_become_connection_failed_naming_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with make_client(refuse) as c, pytest.raises(ConnectionFailed) as info:
        c.models()
    assert info.value.url == "http://s2i.test"
    assert str(info.value) == "cannot reach http://s2i.test: [Errno 111] Connection refused"
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    with make_client(slow) as c, pytest.raises(ConnectionFailed, match="no answer from"):
        c.translate(b"png")


def test_translate_sends_only_given_fields_and_reads_the_headers(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=b"\x89PNG...",
            headers={
                "content-type": "image/png",
                "x-model": "sketch2photo",
                "x-model-version": "3",
                "x-routed-by": "auto: drawing (0.97)",
                "x-job-id": "a" * 32,
                "x-queue-ms": "1.5",
                "x-compute-ms": "12.0",
            },
        )

    path = tmp_path / "drawing.png"
    path.write_bytes(b"fake png")
    with Sketch2ImageClient(
        "http://s2i.test/", api_key="k", transport=httpx.MockTransport(handler)
    ) as c:
        out = c.translate(path)
        c.translate(b"raw", model="photo2sketch", style=2, keep_aspect=True, output_size="input")
    assert (out.image, out.media_type, out.model, out.version) == (
        b"\x89PNG...",
        "image/png",
        "sketch2photo",
        3,
    )
    assert (out.routed_by, out.job_id, out.queue_ms, out.compute_ms) == (
        "auto: drawing (0.97)",
        "a" * 32,
        1.5,
        12.0,
    )
    first, second = (r.read().decode("latin-1") for r in seen)
    assert seen[0].url == "http://s2i.test/v1/translate"
    assert seen[0].headers["x-api-key"] == "k"
    assert 'filename="drawing.png"' in first
    assert "Content-Type: image/png" in first
    for absent in ("style", "version", "timeout", "keep_aspect", "output_size"):
        assert f'name="{absent}"' not in first
    assert 'name="model"\r\n\r\nauto' in first
    assert 'name="style"\r\n\r\n2' in second
    assert 'name="keep_aspect"\r\n\r\ntrue' in second
    assert 'name="output_size"\r\n\r\ninput' in second


def test_async_translate_wait_and_result() -> None:
    polls = {"n": 0}
    job_id = "b" * 32

    def status(state: str) -> dict[str, object]:
        return {
            "id": job_id,
            "state": state,
            "model": "sketch2photo",
            "version": 1,
            "timings": {"created_at": 1.0, "queue_ms": 2.0, "compute_ms": 3.0},
            "result_url": f"/v1/jobs/{job_id}/result" if state == "succeeded" else None,
        }

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/translate":
            assert request.url.params["async"] == "true"
            return httpx.Response(202, json=status("queued"))
        if path == f"/v1/jobs/{job_id}":
            polls["n"] += 1
            return httpx.Response(200, json=status("running" if polls["n"] < 3 else "succeeded"))
        if path == f"/v1/jobs/{job_id}/result":
            return httpx.Response(200, content=b"image", headers={"content-type": "image/png"})
        return httpx.Response(404)

    with make_client(handler) as c:
        job = c.translate_async(b"png")
        assert (job.id, job.state, job.final) == (job_id, "queued", False)
        done = c.wait(job.id, poll_s=0.001)
        assert (done.state, done.compute_ms, done.final) == ("succeeded", 3.0, True)
        assert c.result(job.id) == b"image"
        polls["n"] = -10_000
        with pytest.raises(WaitTimeout, match="still running"):
            c.wait(job.id, poll_s=0.01, timeout=0.05)


def test_generate_sends_json_without_unset_fields() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, content=b"grid", headers={"x-model": "catdog"})

    with make_client(handler) as c:
        out = c.generate("catdog", n=4, seed=1)
    assert bodies == [{"model": "catdog", "n": 4, "format": "png", "seed": 1}]
    assert (out.image, out.model, out.version) == (b"grid", "catdog", None)


def test_ready_returns_503_body_instead_of_raising() -> None:
    body = {"status": "not ready", "checks": {"redis": "unreachable: ConnectionError"}}
    with make_client(lambda r: httpx.Response(503, json=body, headers={"retry-after": "2"})) as c:
        assert c.ready() == body


def test_cli_prints_one_error_line_and_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    detail = "the file is not an image PIL can read (PNG, JPEG, WebP, ...)"
    transport = httpx.MockTransport(problem(415, "The image format is not supported", detail))
    real = client_cli.Sketch2ImageClient

    def factory(url: str, api_key: str | None = None, timeout: float = 60) -> Sketch2ImageClient:
        return real(url, api_key=api_key, timeout=timeout, transport=transport)

    monkeypatch.setattr(client_cli, "Sketch2ImageClient", factory)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert client_cli.main(["translate", str(text)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"error: 415 The image format is not supported: {detail}\n"
    assert not (tmp_path / "notes-out.png").exists()
    with pytest.raises(SystemExit) as exit_info:
        client_cli.main(["translate", str(text), "--format", "gif"])
    assert exit_info.value.code == 2


def test_console_script_target_exists() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    module, _, attr = pyproject["project"]["scripts"]["s2i"].partition(":")
    assert callable(getattr(import_module(module), attr))
    assert any(d.startswith("httpx") for d in pyproject["project"]["dependencies"])
