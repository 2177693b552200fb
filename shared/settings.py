"""One settings object for every service, read from the environment (prefix ``S2I_``).

Defaults are the local run's (``make run``): Redis on loopback, models under ``./var``,
no API keys. ``k8s/`` and ``docker-compose.yml`` override them through the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.manifest import Precision


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="S2I_", env_file=None, extra="ignore")

    # --- shared infrastructure -------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    model_root: Path = Path("var/models")
    data_root: Path = Path("var/data")
    log_level: str = "INFO"

    # --- images ------------------------------------------------------------------------
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    max_output_pixels: int = Field(default=4_000_000, gt=0)  # output_size=input is capped here
    # pixels one process decodes at once (shared/decode_budget.py): peak memory ~ 5 B each
    decode_pixel_budget: int = Field(default=48_000_000, gt=0)

    # --- api ---------------------------------------------------------------------------
    api_keys: list[str] = Field(default_factory=list)  # empty: no key needed
    admin_api_keys: list[str] = Field(default_factory=list)  # for /v1/trainings
    job_ttl_s: int = Field(default=3600, gt=0)  # a job record and its input until the job ends
    result_ttl_s: int = Field(default=300, gt=0)  # a finished job's record and result
    default_timeout_s: float = Field(default=30.0, gt=0)
    max_timeout_s: float = Field(default=300.0, gt=0)
    max_queue_length: int = Field(default=1000, gt=0)  # queued jobs before 429
    retry_after_s: int = Field(default=2, gt=0)
    idempotency_ttl_s: int = Field(default=86400, gt=0)
    worker_heartbeat_ttl_s: float = Field(default=15.0, gt=0)
    default_sketch2photo_model: str = "sketch2photo"
    default_photo2sketch_model: str = "photo2sketch"
    # the HTTP server (services/api/server.py): what one client can hold
    http_head_timeout_s: float = Field(default=10.0, gt=0)  # request line + headers
    http_body_timeout_s: float = Field(default=60.0, gt=0)  # the whole body, once headers came
    http_max_head_bytes: int = Field(default=32 * 1024, gt=0)  # request line + headers
    http_max_connections: int = Field(default=512, gt=0)  # beyond: 503 on each new request
    http_keep_alive_s: int = Field(default=5, gt=0)  # idle keep-alive connections close
    # job-creating requests per caller (services/api/rate_limit.py); 0: no limit
    rate_limit_per_s: float = Field(default=0.0, ge=0)
    rate_limit_burst: int = Field(default=20, gt=0)
    metrics_need_key: bool = False  # /metrics asks for an API key (when keys are configured)

    # --- worker ------------------------------------------------------------------------
    inference_queue: str = "s2i.inference"
    # the models a worker loads, by name (S2I_MODELS="sketch2photo,photo2sketch"); empty: all
    # on the model volume. A request for another model fails with 404 model-not-found.
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    worker_concurrency: int = Field(default=32, gt=0)  # threads; lets batches fill
    backend: Literal["auto", "onnx", "torchscript"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_batch_size: int = Field(default=16, gt=0)
    max_queue_delay_ms: float = Field(default=10.0, ge=0)
    batch_idle_runs_at_once: bool = True  # the delay only when requests queue up (batcher.py)
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    reload_interval_s: float = Field(default=1.0, gt=0)
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    decode_threads: int = Field(default=4, gt=0)
    # batching threads per loaded model that run batches side by side on one session (Triton's
    # instance count); with intra_op_threads 0 each gets cores // instances intra-op threads.
    # 2 served 14-21% more at 8 clients on 2 cores, but a lone request then gets one core
    # (benchmarks/RESULTS.md §8): more for throughput, 1 for the latency of one client.
    model_instances: int = Field(default=1, gt=0)
    intra_op_threads: int = Field(default=0, ge=0)  # 0: the runtime's default (see above)
    # ONNX graphs on CPU: "auto" runs a version's int8 copy where its manifest says it passed
    # its quality bound (Manifest.quantized.accepted), "int8" wherever there is one, "fp32"
    # never (shared/backends). GPU providers always run model.onnx.
    precision: Precision = "auto"
    # ONNX Runtime's idle intra-op threads busy-wait between ops (its own default). Off here:
    # they sleep and leave the CPU to the API and Redis; on 2 cores that served 27-30% more
    # requests at 28-43% less CPU each (benchmarks/RESULTS.md §6). On for a dedicated GPU box.
    onnx_spinning: bool = False
    # on a GPU provider: TensorRT builds fp16 engines, CUDA runs an fp16 copy of the graph
    gpu_fp16: bool = True
    trt_cache_root: Path = Path("var/trt-cache")  # TensorRT engines, kept across restarts

    # --- trainer -----------------------------------------------------------------------
    training_queue: str = "s2i.training"
    run_root: Path = Path("var/runs")
    cache_root: Path = Path("var/cache")  # decoded training sets (services.trainer.data.cache)

    @field_validator("models", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` instead)."""
    return Settings()
