"""One table of problem kinds, each documented; invalid fields answer the same ``errors`` list
whichever way the request came (multipart, JSON body, headers)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from redis import Redis

from services.api import problem_kinds as kinds
from services.api.problems import Problem
from shared.errors import IMAGE_ERROR_KINDS, ErrorKind
from tests.api.test_admission import fake_heartbeat, make_client
from tests.api.test_openapi import schema_of
from tests.images import sketch_png


def test_every_kind_has_a_status_a_title_and_a_documented_type() -> None:
    documented = schema_of()["components"]["schemas"]["Problem"]["properties"]["type"]
    slugs = [k.slug for k in kinds.KINDS]
    assert len(slugs) == len(set(slugs)), "a slug is in the table twice"
    assert len(kinds.KINDS) >= 30
    for kind in kinds.KINDS:
        assert 400 <= kind.status < 600, kind
        assert kind.title.strip(), kind
        assert kind.type == f"urn:sketch2image:problem:{kind.slug}"
        assert f"`{kind.slug}` ({kind.status}): {kind.title}" in documented["description"]


def test_every_job_failure_and_image_error_has_its_kind() -> None:
    assert set(kinds.FAILURES) == set(ErrorKind)
    assert {kinds.FAILURES[k].status for k in IMAGE_ERROR_KINDS} == {400, 413, 415}
    assert set(kinds.FAILURES.values()) <= set(kinds.KINDS)
    for kind in ErrorKind:
        problem = Problem.from_failure(kind, "why")
        assert problem.kind is kinds.FAILURES[kind]
        # a job refused for its fields answers the same errors list as any invalid request
        if problem.kind is kinds.INVALID_REQUEST:
            assert problem.extra["errors"] == [{"field": "", "message": "why"}]


class Fields(BaseModel):
    n: int
    name: str


def test_invalid_constructors_share_one_shape() -> None:
    with pytest.raises(ValidationError) as info:
        Fields.model_validate({"n": "x"})
    problem = Problem.from_validation(info.value)
    assert problem.kind is kinds.INVALID_REQUEST
    assert problem.status == 422
    assert problem.extra["errors"] == [
        {
            "field": "n",
            "message": "Input should be a valid integer, unable to parse string as an integer",
        },
        {"field": "name", "message": "Field required"},
    ]
    assert problem.detail.startswith("n: Input should be a valid integer")
    one = Problem.invalid_field("style", "model 'x' takes no style")
    assert (one.detail, one.extra["errors"]) == (
        "model 'x' takes no style",
        [{"field": "style", "message": "model 'x' takes no style"}],
    )
    assert Problem.invalid([("", "not JSON")]).detail == "body: not JSON"


@pytest.fixture
def api(redis_url: str, redis_db: Redis) -> Iterator[TestClient]:
    fake_heartbeat(redis_db, {"sketch2photo": 1})
    with make_client(redis_url) as client:
        yield client


def invalid_fields(response: Any) -> list[str]:
    """The fields of a 422 invalid-request answer (its ``errors`` must be there)."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"] == "urn:sketch2image:problem:invalid-request"
    assert body["errors"], body
    assert all(set(e) == {"field", "message"} for e in body["errors"])
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"format": "gif"}, ["format"]),
        ({"version": 0}, ["version"]),
        ({"timeout": -1}, ["timeout"]),
        ({"model": "../etc"}, ["model"]),
        ({"model": "sketch2photo", "style": 2}, ["style"]),  # the model takes no style
        ({"model": "sketch2photo", "timeout": 10_000}, ["timeout"]),  # over S2I_MAX_TIMEOUT_S
    ],
)
def test_json_body_answers_the_errors_multipart_does(
    api: TestClient, fields: dict[str, Any], expected: list[str]
) -> None:
    image = sketch_png()
    multipart = api.post(
        "/v1/translate",
        files={"image": ("s.png", image)},
        data={k: str(v) for k, v in fields.items()},
    )
    as_json = api.post("/v1/translate", json={"image": base64.b64encode(image).decode(), **fields})
    assert invalid_fields(multipart) == invalid_fields(as_json) == expected
    assert multipart.json()["errors"] == as_json.json()["errors"]


def test_every_invalid_request_lists_its_fields(api: TestClient) -> None:
    image = {"image": ("s.png", sketch_png())}
    assert invalid_fields(api.post("/v1/translate", files={"other": ("s.png", b"x")})) == ["image"]
    assert invalid_fields(api.post("/v1/translate", json={"model": "sketch2photo"})) == ["image"]
    timeout = api.post("/v1/translate", files=image, headers={"X-Request-Timeout": "soon"})
    assert invalid_fields(timeout) == ["header.x-request-timeout"]
    long_key = api.post("/v1/translate", files=image, headers={"Idempotency-Key": "k" * 300})
    assert invalid_fields(long_key) == ["header.idempotency-key"]
    assert invalid_fields(api.post("/v1/translate", params={"async": "maybe"}, files=image)) == [
        "query.async"
    ]


def test_generate_refuses_a_class_the_model_lacks(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"gen": 1}, task="generate")
    assert invalid_fields(api.post("/v1/generate", json={"model": "gen", "n": 0})) == ["n"]
    unknown = api.post("/v1/generate", json={"model": "gen", "class_name": "cat"})
    assert invalid_fields(unknown) == ["class_name"]
    assert "none (unconditional model)" in unknown.json()["detail"]


def test_a_json_body_that_is_not_json_is_a_422_listing_the_body(
    redis_url: str, redis_db: Redis
) -> None:
    with make_client(redis_url, admin_api_keys=["adm"]) as client:
        r = client.post(
            "/v1/trainings",
            content=b"\xff\xfe\x81q\x05",  # not UTF-8, not JSON (found by schema fuzzing)
            headers={"X-API-Key": "adm", "Content-Type": "application/json"},
        )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == kinds.INVALID_REQUEST.type
    assert body["errors"] == [{"field": "", "message": "the body is not valid JSON"}]
