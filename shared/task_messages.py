"""The Celery message of a job, built without Celery, to be pushed in the job's own transaction.

``Celery.send_task`` costs the API 3-4 ms per request on two busy cores (a thread hop, then
protocol-2 headers, JSON, a base64 body and a delivery tag built in Python: `benchmarks/
RESULTS.md` §7), and it is a second Redis call after the job record is written, so a failure
between the two leaves a stored job with no message. Here the API builds the same message and
``shared.job_store.AsyncJobStore.create`` LPUSHes it in the MULTI/EXEC that stores the record:
one round trip, and either both are there or neither.

What the list holds is exactly what kombu's Redis transport pushes for ``send_task(name,
args=[job_id], queue=q)`` (Celery 5, task protocol 2, JSON serializer, the default exchange:
``_put`` LPUSHes onto the key named by the queue, for priority 0). The workers are unchanged
Celery workers: they BRPOP it, keep it in kombu's unacked hash and redeliver it as before.
``tests/shared/test_task_messages.py`` compares this message with one ``send_task`` really
pushed, so a Celery upgrade that changes the format fails CI, and every end-to-end test runs
its jobs through a real worker that consumes these messages.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any, NamedTuple

# what Celery puts in the body after the arguments: no kwargs, no canvas
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"  # Celery's "origin": the sender
_REPLY_TO = str(uuid.uuid4())  # Celery's per-app reply queue id (no results are sent)


class QueuedMessage(NamedTuple):
    """One broker message: the list it goes onto and the bytes that go there."""

    queue: str
    payload: bytes


def task_message(task: str, args: list[Any], queue: str) -> QueuedMessage:
    """The message ``send_task(task, args=args, queue=queue)`` would push to Redis."""
    task_id = str(uuid.uuid4())
    body = json.dumps([args, {}, _EMBED]).encode()
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": repr(args),
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,  # persistent
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return QueuedMessage(queue, json.dumps(envelope).encode())
