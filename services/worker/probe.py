"""``python -m services.worker.probe``: exit 0 when a worker on this host has a fresh heartbeat.

Used as the Kubernetes liveness probe of worker pods (one worker process per pod).
"""

from __future__ import annotations

import socket
import sys

from redis import Redis

from shared.jobs import WORKER_KEY_PREFIX
from shared.settings import get_settings


def main() -> int:
    redis = Redis.from_url(get_settings().redis_url, socket_timeout=3)
    pattern = f"{WORKER_KEY_PREFIX}{socket.gethostname()}-*"
    return 0 if any(True for _ in redis.scan_iter(match=pattern, count=100)) else 1


if __name__ == "__main__":
    sys.exit(main())
