"""A client generated from the running service's /openapi.json by openapi-python-client builds,
calls POST /v1/translate (multipart and JSON bodies) with its default headers and gets the
image, and parses the API's problem+json errors."""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from PIL import Image

from services.local import LocalStack
from tests.images import sketch_png

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PACKAGE = "s2i_generated_client"
BIN = Path(sys.executable).parent


def generator() -> str:
    found = shutil.which("openapi-python-client", path=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    if found is None:
        pytest.skip("openapi-python-client is not installed (pip install openapi-python-client)")
    return found


@pytest.fixture(scope="module")
def generated(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    exe = generator()
    tmp = tmp_path_factory.mktemp("openapi-client")
    schema = tmp / "openapi.json"
    schema.write_text(httpx.get(f"{stack.base_url}/openapi.json", timeout=30).text)
    args = ["--path", str(schema), "--output-path", str(tmp / PACKAGE), "--meta", "none"]
    run = subprocess.run(
        [exe, "generate", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},  # its ruff hooks
    )
    assert run.returncode == 0, f"generator failed:\n{run.stdout}\n{run.stderr}"
    assert (tmp / PACKAGE / "client.py").is_file(), run.stdout
    sys.path.insert(0, str(tmp))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def translate_module(package: ModuleType) -> ModuleType:
    """The module generated for POST /v1/translate (its name comes from the operationId)."""
    root = Path(package.__file__ or "").parent
    found = sorted(root.glob("api/*/translate*.py"))
    assert len(found) == 1, f"no single module for POST /v1/translate in {root / 'api'}"
    rel = found[0].relative_to(root).with_suffix("")
    return importlib.import_module(".".join((PACKAGE, *rel.parts)))


def body_class(module: ModuleType, suffix: str) -> Any:
    names = [n for n in vars(module) if n.endswith(suffix) and isinstance(vars(module)[n], type)]
    assert len(names) == 1, f"no single *{suffix} class in {module.__name__}: {names}"
    return vars(module)[names[0]]


def default_client(package: ModuleType, stack: LocalStack, **kwargs: Any) -> Any:
    """The generated Client as a user would make it: no Accept header of its own."""
    client_mod = importlib.import_module(f"{PACKAGE}.client")
    return client_mod.Client(
        base_url=stack.base_url,
        timeout=httpx.Timeout(60),
        raise_on_unexpected_status=True,
        **kwargs,
    )


def image_of(parsed: Any) -> Image.Image:
    """The generated code models the 200 answer as a File (the image's bytes)."""
    assert type(parsed).__name__ == "File", type(parsed)
    return Image.open(parsed.payload)


def test_generated_client_translates_a_multipart_upload(
    generated: ModuleType, stack: LocalStack
) -> None:
    translate = translate_module(generated)
    files_body = body_class(translate, "FilesBody")
    file_type = importlib.import_module(f"{PACKAGE}.types").File
    body = files_body(
        image=file_type(payload=io.BytesIO(sketch_png()), file_name="s.png", mime_type="image/png"),
        model="sketch2photo",
    )
    response = translate.sync_detailed(client=default_client(generated, stack), body=body)
    assert response.status_code == 200, response.content[:500]
    assert response.headers["x-model"] == "sketch2photo"
    assert response.headers["content-type"] == "image/png"
    assert image_of(response.parsed).size == (128, 128)


def test_generated_client_with_default_headers_parses_the_image_answer(
    generated: ModuleType, stack: LocalStack
) -> None:
    translate = translate_module(generated)
    jpeg = importlib.import_module(f"{PACKAGE}.models").TranslateJSONFormat.JPEG
    body = body_class(translate, "TranslateJSON")(
        image=base64.b64encode(sketch_png(1)).decode(), model="sketch2photo", format_=jpeg
    )
    response = translate.sync_detailed(client=default_client(generated, stack), body=body)
    assert response.status_code == 200, response.content[:500]
    assert response.headers["content-type"] == "image/jpeg"
    image = image_of(response.parsed)
    assert image.format == "JPEG"
    assert image.size == (128, 128)


def test_generated_models_parse_the_json_answer(generated: ModuleType, stack: LocalStack) -> None:
    """Under Accept: application/json the answer is TranslateResult; the generated code hands
    its bytes over as a File (it models the first documented type), the generated model
    parses them."""
    translate = translate_module(generated)
    result_model = importlib.import_module(f"{PACKAGE}.models").TranslateResult
    body = body_class(translate, "TranslateJSON")(
        image=base64.b64encode(sketch_png(2)).decode(), model="sketch2photo"
    )
    client = default_client(generated, stack, headers={"Accept": "application/json"})
    response = translate.sync_detailed(client=client, body=body)
    assert response.status_code == 200, response.content[:500]
    assert response.headers["content-type"] == "application/json"
    result = result_model.from_dict(json.loads(response.content))
    assert result.job.state.value == "succeeded"
    assert result.media_type == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(result.image))).format == "PNG"


def api_module(package: ModuleType, tag: str, operation_id: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")


def test_generated_client_parses_a_422_problem(generated: ModuleType, stack: LocalStack) -> None:
    generate = api_module(generated, "inference", "generate")
    request = importlib.import_module(f"{PACKAGE}.models").GenerateRequest
    response = generate.sync_detailed(
        client=default_client(generated, stack), body=request(model="sketch2photo", n=1000)
    )
    assert response.status_code == 422
    problem = response.parsed
    assert type(problem).__name__ == "Problem"
    assert problem.status == 422
    assert problem.type_ == "urn:sketch2image:problem:invalid-request"
    assert "n:" in problem.detail
    assert [e.field for e in problem.errors] == ["n"]


def test_generated_client_parses_a_404_problem_for_a_malformed_job_id(
    generated: ModuleType, stack: LocalStack
) -> None:
    get_job = api_module(generated, "jobs", "get_job")
    response = get_job.sync_detailed("not-a-job-id", client=default_client(generated, stack))
    assert response.status_code == 404
    problem = response.parsed
    assert type(problem).__name__ == "Problem"
    assert problem.type_ == "urn:sketch2image:problem:unknown-job"
    assert problem.instance == "/v1/jobs/not-a-job-id"
