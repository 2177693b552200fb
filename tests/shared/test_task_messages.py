"""The message the API pushes is the one Celery's ``send_task`` pushes (``shared.task_messages``).

A real Celery worker consuming these messages is what every end-to-end test does
(``tests/e2e``); this file pins the format itself, so that a Celery or kombu upgrade that
changes it fails here, naming the field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from shared.celery_app import make_celery
from shared.jobs import TRANSLATE_TASK, new_job_id
from shared.settings import Settings
from shared.task_messages import task_message

QUEUE = "s2i.format-check"
# differ per message or per process by design
PER_MESSAGE = {"id", "root_id", "correlation_id", "delivery_tag", "origin", "reply_to"}


@pytest.fixture
def celery_pushed(redis_url: str, redis_db: Redis) -> Iterator[dict[str, Any]]:
    """The message ``send_task`` pushed for one job id, as kombu's Redis transport wrote it."""
    job_id = new_job_id()
    app = make_celery(Settings(redis_url=redis_url))
    app.send_task(TRANSLATE_TASK, args=[job_id], queue=QUEUE)
    (raw,) = redis_db.lrange(QUEUE, 0, -1)
    redis_db.delete(QUEUE)
    yield {"job_id": job_id, "message": json.loads(raw)}
    app.close()


def _without_ids(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k not in PER_MESSAGE}


def test_the_message_matches_what_send_task_pushes(celery_pushed: dict[str, Any]) -> None:
    expected = celery_pushed["message"]
    queue, payload = task_message(TRANSLATE_TASK, [celery_pushed["job_id"]], QUEUE)
    ours = json.loads(payload)

    assert queue == QUEUE
    assert ours.keys() == expected.keys()
    assert base64.b64decode(ours["body"]) == base64.b64decode(expected["body"])
    for part in ("headers", "properties"):
        assert ours[part].keys() == expected[part].keys(), part
        assert _without_ids(ours[part]) == _without_ids(expected[part]), part
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
        k: v for k, v in expected.items() if k not in ("body", "headers", "properties")
    }


def test_every_message_has_its_own_task_id_and_delivery_tag() -> None:
    first, second = (json.loads(task_message(TRANSLATE_TASK, ["j"], QUEUE).payload) for _ in "12")

    assert first["headers"]["id"] == first["headers"]["root_id"]
    assert first["headers"]["id"] == first["properties"]["correlation_id"]
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
