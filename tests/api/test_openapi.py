"""The OpenAPI schema says what the API really answers: every error a Problem
(application/problem+json), readable operation ids, the key schemes, X-Seed on generate
results; and a malformed job id is an unknown job (404)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from redis import Redis

from services.api.main import create_app
from shared.jobs import JobRecord, JobState, job_key, new_job_id, result_key
from shared.settings import Settings
from tests.api.test_admission import fake_heartbeat, make_client
from tests.images import sketch_png

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
OPERATION_IDS = {
    ("post", "/v1/translate"): "translate",
    ("post", "/v1/generate"): "generate",
    ("get", "/v1/jobs/{job_id}"): "get_job",
    ("delete", "/v1/jobs/{job_id}"): "cancel_job",
    ("get", "/v1/jobs/{job_id}/result"): "get_job_result",
    ("get", "/v1/models"): "list_models",
    ("get", "/v1/models/{name}"): "get_model",
    ("post", "/v1/trainings"): "start_training",
    ("get", "/v1/trainings/{training_id}"): "get_training",
    ("delete", "/v1/trainings/{training_id}"): "cancel_training",
    ("get", "/healthz"): "healthz",
    ("get", "/readyz"): "readyz",
    ("get", "/metrics"): "metrics",
}


def schema_of(**settings: Any) -> dict[str, Any]:
    # the schema needs no running app (no Redis): it is built from the routes
    return create_app(Settings(**{"api_keys": [], "admin_api_keys": [], **settings})).openapi()


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return schema_of()


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def statuses(spec: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(code) for code in spec["paths"][path][method]["responses"]}


def test_every_error_is_a_problem_and_fastapis_422_is_gone(spec: dict[str, Any]) -> None:
    components = spec["components"]["schemas"]
    problem = components["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "errors", "job_id"} <= set(problem["properties"])
    assert set(components["ProblemFieldError"]["required"]) == {"field", "message"}
    assert "HTTPValidationError" not in json.dumps(spec)
    assert "ValidationError" not in components
    documented = 0
    for method, path, operation in operations(spec):
        for code, response in operation["responses"].items():
            content = response.get("content", {})
            if "application/problem+json" in content or (
                int(code) >= 400 and (method, path) != ("get", "/readyz")
            ):
                assert content == PROBLEM, (method, path, code)
                assert response["description"], (method, path, code)
                documented += 1
    assert documented > 50
    # readyz answers its checks, not a problem, when not ready
    ready = spec["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]
    assert ready["schema"] == {"$ref": "#/components/schemas/Readiness"}


def test_operation_ids(spec: dict[str, Any]) -> None:
    found = {(method, path): op["operationId"] for method, path, op in operations(spec)}
    assert found == OPERATION_IDS


def test_documented_statuses(spec: dict[str, Any]) -> None:
    for method, path in OPERATION_IDS:
        if path.startswith("/v1/"):
            assert 401 in statuses(spec, method, path), (method, path)
            assert 503 in statuses(spec, method, path), (method, path)  # Redis down
    for method, path in [
        ("get", "/v1/jobs/{job_id}"),
        ("delete", "/v1/jobs/{job_id}"),
        ("get", "/v1/jobs/{job_id}/result"),
        ("get", "/v1/models/{name}"),
        ("get", "/v1/trainings/{training_id}"),
        ("delete", "/v1/trainings/{training_id}"),
    ]:
        assert 404 in statuses(spec, method, path), (method, path)
    translate = statuses(spec, "post", "/v1/translate")
    generate = statuses(spec, "post", "/v1/generate")
    assert {200, 202, 400, 404, 410, 413, 415, 422, 429, 500, 504} <= translate
    assert {200, 202, 404, 410, 422, 429, 500, 504} <= generate
    assert not {400, 413, 415} & generate  # no image comes in
    assert {200, 404, 409, 410, 500, 504} <= statuses(spec, "get", "/v1/jobs/{job_id}/result")
    # a job id is never "invalid", only unknown; the key headers take any string
    for method, path in [
        ("get", "/v1/jobs/{job_id}"),
        ("delete", "/v1/jobs/{job_id}"),
        ("get", "/v1/models"),
    ]:
        assert 422 not in statuses(spec, method, path), (method, path)
    for method, path in [("post", "/v1/trainings"), ("get", "/v1/trainings/{training_id}")]:
        assert 403 in statuses(spec, method, path)  # admin endpoints disabled


def test_image_answers_are_binary_and_come_first(spec: dict[str, Any]) -> None:
    for method, path in [
        ("post", "/v1/translate"),
        ("post", "/v1/generate"),
        ("get", "/v1/jobs/{job_id}/result"),
    ]:
        ok = spec["paths"][path][method]["responses"]["200"]
        types = list(ok["content"])
        # generators model the first type they know: the default answer (an image) comes first
        assert types[:3] == ["image/png", "image/jpeg", "image/webp"], (path, types)
        assert types.index("application/octet-stream") < types.index("application/json")
        for media in types[:4]:
            assert ok["content"][media]["schema"] == {"type": "string", "format": "binary"}
        json_answer = ok["content"]["application/json"]["schema"]
        assert json_answer == {"$ref": "#/components/schemas/TranslateResult"}
        assert "X-Job-Id" in ok["headers"]
        assert "X-Seed" in ok["headers"], path  # translate: models with noise
    generate_202 = spec["paths"]["/v1/generate"]["post"]["responses"]["202"]["headers"]
    assert {"Location", "X-Seed"} <= set(generate_202)
    seed = spec["components"]["schemas"]["GenerateRequest"]["properties"]["seed"]
    assert "X-Seed" in seed["description"]


def test_security_schemes() -> None:
    spec = schema_of(api_keys=["k"], admin_api_keys=["a"])
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header"}
    assert schemes["ApiKey"]["name"] == schemes["AdminApiKey"]["name"] == "X-API-Key"
    assert schemes["AdminApiKey"]["type"] == "apiKey"
    assert schemes["BearerAuth"] == {**schemes["BearerAuth"], "type": "http", "scheme": "bearer"}
    for _, path, operation in operations(spec):
        security = operation.get("security")
        if path.startswith("/v1/trainings"):
            assert security == [{"AdminApiKey": []}, {"BearerAuth": []}], path
        elif path.startswith("/v1/"):
            assert security == [{"ApiKey": []}, {"BearerAuth": []}], path
        else:
            assert security is None, path  # probes and metrics need no key
    # with no API keys configured the key is optional (the empty requirement)
    for _, path, operation in operations(schema_of()):
        if path.startswith("/v1/") and not path.startswith("/v1/trainings"):
            assert operation["security"] == [{"ApiKey": []}, {"BearerAuth": []}, {}], path
        elif path.startswith("/v1/trainings"):
            assert {} not in operation["security"], path


@pytest.fixture
def api(redis_url: str, redis_db: Redis) -> Iterator[TestClient]:
    with make_client(redis_url) as client:
        yield client


@pytest.mark.parametrize("job_id", ["not-a-job-id", "0" * 31, "A" * 32, "0" * 33, "x" * 300])
def test_a_malformed_job_id_is_an_unknown_job(api: TestClient, job_id: str) -> None:
    for method, path in [
        ("GET", f"/v1/jobs/{job_id}"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("GET", f"/v1/jobs/{job_id}/result"),
    ]:
        r = api.request(method, path)
        assert r.status_code == 404, (method, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["type"] == "urn:sketch2image:problem:unknown-job"


def test_api_keys_as_bearer_token(redis_url: str, redis_db: Redis) -> None:
    with make_client(redis_url, api_keys=["s3cret"], admin_api_keys=["adm"]) as client:
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).is_success
        assert client.get("/v1/models", headers={"Authorization": "Bearer adm"}).is_success
        assert (
            client.get("/v1/models", headers={"Authorization": "Basic s3cret"}).status_code == 401
        )
        assert client.get("/v1/models", headers={"Authorization": "Bearer "}).status_code == 401
        unknown = "/v1/trainings/" + "0" * 32
        assert client.get(unknown, headers={"X-API-Key": "s3cret"}).status_code == 401
        assert client.get(unknown, headers={"X-API-Key": "adm"}).status_code == 404


def test_generate_answers_its_seed(api: TestClient, redis_db: Redis) -> None:
    fake_heartbeat(redis_db, {"gen": 1}, task="generate")
    picked = api.post("/v1/generate", params={"async": "true"}, json={"model": "gen"})
    assert picked.status_code == 202, picked.text
    record = JobRecord.from_redis(redis_db.hgetall(job_key(picked.json()["id"])))
    assert picked.headers["x-seed"] == str(record.seed)
    given = api.post("/v1/generate", params={"async": "true"}, json={"model": "gen", "seed": 7})
    assert given.headers["x-seed"] == "7"
    translate = api.post(
        "/v1/translate",
        params={"async": "true"},
        files={"image": ("s.png", sketch_png())},
        data={"model": "gen"},
    )
    assert translate.status_code == 202, translate.text
    assert "x-seed" not in translate.headers


def finished(redis: Redis, **fields: Any) -> str:
    job = JobRecord(
        id=new_job_id(),
        state=JobState.succeeded,
        media_type="image/png",
        created_at=time.time(),
        **fields,
    )
    redis.hset(job_key(job.id), mapping=job.to_redis())
    redis.set(result_key(job.id), sketch_png())
    return job.id


def test_result_of_a_generate_job_carries_its_seed(api: TestClient, redis_db: Redis) -> None:
    generated = finished(redis_db, kind="generate", model="gen", seed=1234)
    r = api.get(f"/v1/jobs/{generated}/result")
    assert r.status_code == 200
    assert r.headers["x-seed"] == "1234"
    assert r.headers["content-type"] == "image/png"
    assert r.content == sketch_png()
    translated = finished(redis_db, model="sketch2photo")
    assert "x-seed" not in api.get(f"/v1/jobs/{translated}/result").headers


def test_result_media_types(api: TestClient, redis_db: Redis) -> None:
    job_id = finished(redis_db, kind="generate", model="gen", seed=1)
    url = f"/v1/jobs/{job_id}/result"
    for accept, media_type in [
        (None, "image/png"),
        ("*/*", "image/png"),
        ("image/*", "image/png"),
        ("application/octet-stream", "application/octet-stream"),
        ("application/json", "application/json"),
    ]:
        r = api.get(url, headers={"Accept": accept} if accept else {})
        assert r.headers["content-type"] == media_type, accept
        assert r.headers["x-seed"] == "1"
    assert api.get(url, headers={"Accept": "application/octet-stream"}).content == sketch_png()
