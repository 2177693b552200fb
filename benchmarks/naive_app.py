"""The baseline a user would write instead of this service: one process, no queue.

FastAPI under uvicorn; ``POST /v1/translate`` decodes the upload with Pillow, shapes it as the
worker does (``shared.model_input``), runs the model at batch 1 with ONNX Runtime in the
request's thread, and answers a PNG. ``S2I_NAIVE_MODEL_DIR`` is a published version folder
(its ``manifest.json`` and ``model.onnx``): the same files the stack serves;
``S2I_NAIVE_PRECISION=int8`` runs the version's int8 copy instead (``model.int8.onnx``).

    S2I_NAIVE_MODEL_DIR=var/models/sketch2photo/versions/000001 \\
        uvicorn benchmarks.naive_app:app --port 8001
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, File, Response, UploadFile
from fastapi.concurrency import run_in_threadpool

from shared import images
from shared.manifest import INPUT_NAME, INT8_ONNX_FILE, ONNX_FILE, Manifest
from shared.model_input import model_input

MAX_BYTES, MAX_PIXELS = 10 * 1024 * 1024, 40_000_000

folder = Path(os.environ["S2I_NAIVE_MODEL_DIR"])
manifest = Manifest.model_validate_json((folder / "manifest.json").read_text())
graph = INT8_ONNX_FILE if os.environ.get("S2I_NAIVE_PRECISION") == "int8" else ONNX_FILE
session = ort.InferenceSession(str(folder / graph), providers=["CPUExecutionProvider"])
app = FastAPI()


def translate_bytes(data: bytes) -> bytes:
    img = images.decode(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    x = model_input(img, manifest.input, None)[None]  # (1, C, H, W) in [-1, 1]
    (y,) = session.run(None, {INPUT_NAME: x.astype(np.float32)})
    return images.encode(images.from_array(y[0]), "png")


@app.post("/v1/translate")
async def translate(image: Annotated[UploadFile, File()]) -> Response:
    data = await image.read()
    return Response(await run_in_threadpool(translate_bytes, data), media_type="image/png")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}
