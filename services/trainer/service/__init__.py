"""The trainer as a long-lived service: ``app`` (Celery, heartbeat), ``runs`` (one run)."""
