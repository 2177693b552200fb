# syntax=docker/dockerfile:1.7
#
# sketch2image images, one Dockerfile, one target per image:
#
#   docker build --target api         -t sketch2image-api:0.1.0 .
#   docker build --target worker      -t sketch2image-worker:0.1.0 .       # CPU inference
#   docker build --target worker-gpu  -t sketch2image-worker-gpu:0.1.0 .   # CUDA + onnxruntime-gpu
#   docker build --target trainer     -t sketch2image-trainer:0.1.0 .      # CPU torch
#   docker build --target trainer-gpu -t sketch2image-trainer-gpu:0.1.0 .  # CUDA torch
#
# Every image installs torch first (pinned, from the CPU index or PyPI's CUDA build), keeps it
# pinned through a pip constraint, then installs the package with the target's extra into
# /opt/venv in a builder stage; the runtime stage copies only that venv and runs as uid 10001.
# No secrets are baked in: everything is configured through S2I_* environment variables.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
# CUDA 13 + cuDNN 9: what torch 2.14's PyPI wheels and onnxruntime-gpu's PyPI wheels are built for.
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
# CPU images take torch from the PyTorch CPU index; GPU images from PyPI (its Linux torch wheels
# are the CUDA 13 builds).
ARG TORCH_CPU_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_GPU_INDEX_URL=https://pypi.org/simple

# ============================================================================ CPU images

FROM ${PYTHON_IMAGE} AS cpu-runtime
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    S2I_MODEL_ROOT=/models \
    S2I_DATA_ROOT=/data \
    S2I_RUN_ROOT=/runs
# /models, /data and /runs are created owned by the app user so that a fresh named volume
# mounted there inherits that owner (Docker copies the mount point's ownership into it).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app \
    && mkdir -p /models /data /runs \
    && chown app:app /models /data /runs
WORKDIR /app
LABEL org.opencontainers.image.title="sketch2image" \
      org.opencontainers.image.description="Sketch-to-photo and photo-to-sketch GAN serving and training"

FROM cpu-runtime AS cpu-builder
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ARG TORCH_CPU_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/etc/pip-constraints.txt
RUN python -m venv /opt/venv \
    && printf 'torch==%s\ntorchvision==%s\n' "${TORCH_VERSION}" "${TORCHVISION_VERSION}" \
        > /etc/pip-constraints.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_CPU_INDEX_URL}"
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services

FROM cpu-builder AS build-api
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/app[api]"

FROM cpu-builder AS build-worker
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/app[worker]"

FROM cpu-builder AS build-trainer
ARG TORCHVISION_VERSION
ARG TORCH_CPU_INDEX_URL
# piq needs torchvision: take the build that matches the pinned torch, from the same index.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torchvision==${TORCHVISION_VERSION}" --index-url "${TORCH_CPU_INDEX_URL}" \
    && pip install "/app[trainer]"

# ---------------------------------------------------------------------------- api
FROM cpu-runtime AS api
COPY --from=build-api /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# uvicorn with header/body deadlines, a head size limit and a connection cap (S2I_HTTP_*)
CMD ["python", "-m", "services.api.server", "--host", "0.0.0.0", "--port", "8000"]

# ---------------------------------------------------------------------------- worker (CPU)
FROM cpu-runtime AS worker
COPY --from=build-worker /opt/venv /opt/venv
USER 10001:10001
# exits 0 while this container's worker has a fresh heartbeat in Redis
HEALTHCHECK --interval=15s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "services.worker.probe"]
# SIGTERM = Celery warm shutdown: finish the jobs in hand, give back the prefetched ones.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.worker"]

# ---------------------------------------------------------------------------- trainer (CPU)
FROM cpu-runtime AS trainer
COPY --from=build-trainer /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.trainer", "serve"]

# ============================================================================ GPU images

FROM ${CUDA_IMAGE} AS gpu-runtime
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    S2I_MODEL_ROOT=/models \
    S2I_DATA_ROOT=/data \
    S2I_RUN_ROOT=/runs
# The distribution's Python (3.12 on Ubuntu 24.04); the pinned base tag fixes the package set.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app \
    && mkdir -p /models /data /runs \
    && chown app:app /models /data /runs
WORKDIR /app
LABEL org.opencontainers.image.title="sketch2image" \
      org.opencontainers.image.description="Sketch-to-photo and photo-to-sketch GAN serving and training (CUDA)"

FROM gpu-runtime AS gpu-builder
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ARG TORCH_GPU_INDEX_URL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/etc/pip-constraints.txt
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && printf 'torch==%s\ntorchvision==%s\n' "${TORCH_VERSION}" "${TORCHVISION_VERSION}" \
        > /etc/pip-constraints.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_GPU_INDEX_URL}"
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services

FROM gpu-builder AS build-worker-gpu
# The worker extra pulls the CPU `onnxruntime`, the gpu extra `onnxruntime-gpu`; both install
# the same `onnxruntime` module, so the CPU one is removed and the GPU one reinstalled over it.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "/app[worker,gpu]" \
    && ort_gpu="$(pip show onnxruntime-gpu | sed -n 's/^Version: //p')" \
    && pip uninstall -y onnxruntime \
    && pip install --no-deps --force-reinstall "onnxruntime-gpu==${ort_gpu}"

FROM gpu-builder AS build-trainer-gpu
ARG TORCHVISION_VERSION
ARG TORCH_GPU_INDEX_URL
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install "torchvision==${TORCHVISION_VERSION}" --index-url "${TORCH_GPU_INDEX_URL}" \
    && pip install "/app[trainer]"

# ---------------------------------------------------------------------------- worker (GPU)
FROM gpu-runtime AS worker-gpu
COPY --from=build-worker-gpu /opt/venv /opt/venv
# TensorRT's engine cache (a volume in compose and k8s; owned here so a new volume is writable)
RUN mkdir -p /trt-cache && chown 10001:10001 /trt-cache
ENV S2I_DEVICE=cuda S2I_TRT_CACHE_ROOT=/trt-cache
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-m", "services.worker.probe"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.worker"]

# ---------------------------------------------------------------------------- trainer (GPU)
FROM gpu-runtime AS trainer-gpu
COPY --from=build-trainer-gpu /opt/venv /opt/venv
USER 10001:10001
HEALTHCHECK NONE
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.trainer", "serve"]

# The last stage is what a plain `docker build .` gives: the API.
FROM api AS default
