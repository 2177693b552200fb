"""TorchScript backend: a frozen ``torch.jit`` module on CUDA when there is one, else CPU."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class TorchScriptBackend:
    def __init__(self, path: Path, *, device: str = "auto", threads: int = 0) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self._device = torch.device(device)
        with warnings.catch_warnings():  # TorchScript is what this backend runs, on purpose
            warnings.filterwarnings("ignore", r".*torch\.jit.*is deprecated", FutureWarning)
            self._module = torch.jit.load(str(path), map_location=self._device).eval()
        self.name = f"torchscript:{self._device.type}"
        self.pad_batches = self._device.type == "cuda"
        log.info("loaded %s on %s", path, self._device)

    def run(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch)).to(self._device)
            out = self._module(x)
            return out.float().cpu().numpy()

    def close(self) -> None:
        del self._module
