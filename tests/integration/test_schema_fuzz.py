"""Schema fuzzing against the running stack (schemathesis): no 5xx, and every status code,
content type and header the API answers is the one its OpenAPI schema documents."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.local import LocalStack

pytestmark = pytest.mark.integration

# a 504 (deadline-exceeded: the fuzzer asks for tiny timeouts) is a documented answer; any
# other 5xx is a failure
CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "504"]
"""

ST = shutil.which("st") or str(Path(sys.executable).with_name("st"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def test_fuzzed_requests_get_documented_answers_and_no_server_error(
    stack: LocalStack, tmp_path: Path
) -> None:
    if not Path(ST).exists():
        pytest.skip("schemathesis is not installed (pip install '.[dev]')")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    run = subprocess.run(
        [
            ST,
            "--config-file",
            str(config),
            "run",
            stack.base_url + "/openapi.json",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--request-timeout",
            "60",
            "--workers",  # one: Python 3.11.7's ast.parse, which hypothesis calls while
            "1",  # generating, fails at random in concurrent threads (CPython gh-106905)
            "--warnings",
            "off",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # its reports, if any, stay out of the repository
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
