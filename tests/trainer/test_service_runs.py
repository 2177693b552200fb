"""The trainer service's run logic against a real Redis: a message delivered again after its
run ended leaves the record as it was."""

from __future__ import annotations

import pytest
from redis import Redis

from services.trainer.service.runs import run_training
from shared.settings import Settings
from shared.trainings import TrainingRecord, TrainingState, cancel_key, training_key


@pytest.mark.parametrize(
    "state", [TrainingState.succeeded, TrainingState.failed, TrainingState.canceled]
)
def test_a_finished_run_delivered_again_is_dropped_unchanged(
    redis_db: Redis, state: TrainingState
) -> None:
    record = TrainingRecord(
        id="t1", state=state, recipe="pix2pix", dataset="synthetic://4", finished_at=123.0
    )
    redis_db.set(training_key("t1"), record.model_dump_json())
    assert run_training(Settings(), redis_db, "t1") is state
    stored = redis_db.get(training_key("t1"))
    assert isinstance(stored, bytes)
    assert TrainingRecord.model_validate_json(stored) == record


def test_a_canceled_queued_run_ends_canceled_without_training(redis_db: Redis) -> None:
    record = TrainingRecord(id="t2", recipe="pix2pix", dataset="synthetic://4")
    redis_db.set(training_key("t2"), record.model_dump_json())
    redis_db.set(cancel_key("t2"), "1")
    assert run_training(Settings(), redis_db, "t2") is TrainingState.canceled
    stored = redis_db.get(training_key("t2"))
    assert isinstance(stored, bytes)
    assert TrainingRecord.model_validate_json(stored).state is TrainingState.canceled
