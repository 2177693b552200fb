"""Ship a published version inside the package: fp16 ONNX for serving, D (and netC) to train on.

    python -m services.trainer bundle --model sketch2photo [--version N] \\
        [--checkpoint var/runs/X/checkpoints/latest.pt]

writes ``shared/bundled/<name>/`` (see ``shared.bundled``, which publishes it on first start
with no torch):

- ``model.onnx``: the version's ONNX graph with every float32 weight stored as float16 and a
  Cast back to float32 in front of it. ONNX Runtime folds the casts when the session is built,
  so inference is plain fp32 at half the file size; ``check_parity`` bounds the difference;
- ``manifest.json``: the version's manifest (metrics, compute, input spec), less its files;
  with ``--eval FILE`` (the JSON of ``compare``) its metrics are that evaluation's;
- ``model.int8.onnx``, where the version has one (``quantize``), as it is;
- ``superseded.sha256``: the copies the folder held before, the one replaced included, so
  that ``publish_bundled`` upgrades a model volume that still serves one of them;
- ``training_nets.safetensors`` (with ``--checkpoint``): the nets only training uses, in fp16: the
  run's discriminator(s), and netC where the recipe has one, so ``--init-from <name>``
  continues training from what the repository holds: netG comes from the ONNX weights, whose
  names are the generator's state-dict keys (``weights.py``). Without ``--checkpoint``, a
  bundle of the generator the folder already holds (to ship new metrics) keeps its file.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from shared.backends.onnx import OnnxBackend
from shared.bundled import BUNDLED_ROOT, MANIFEST_FILE, ONNX_FILE, carry_superseded
from shared.manifest import INT8_ONNX_FILE, Manifest
from shared.registry import Registry

log = logging.getLogger(__name__)

# max |fp16-weights output - fp32 output| on a random input, in [-1, 1] units: half an 8-bit
# level (2 / 255 / 2), a difference no encoded image shows
PARITY_ATOL = 1 / 255


def fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every float32 initializer stored as float16, cast back to float32 where it is used."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
        half.name = f"{init.name}__fp16"
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [half.name[: -len("__fp16")]],
                                      to=TensorProto.FLOAT))  # fmt: skip
    # the casts come first: graph nodes must be in topological order
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def fp32_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """``fp16_weights`` undone: each float16 initializer that a Cast turns into float32 stored
    as that float32 tensor, the Cast dropped (for tools that expect fp32 graphs: quantize)."""
    graph = model.graph
    halves = {i.name: i for i in graph.initializer if i.data_type == TensorProto.FLOAT16}
    kept = []
    for node in graph.node:
        source = halves.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        cast_to = next((a.i for a in node.attribute if a.name == "to"), None)
        if source is None or cast_to != TensorProto.FLOAT:
            kept.append(node)
            continue
        full = numpy_helper.to_array(source).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(full, node.output[0]))
    used = _names_used(kept) | {o.name for o in graph.output}
    for name, init in halves.items():
        if name not in used:
            graph.initializer.remove(init)
    del graph.node[:]
    graph.node.extend(kept)
    return model


def _names_used(nodes: Iterable[onnx.NodeProto]) -> set[str]:
    """Every input name of ``nodes`` and of the nodes of their subgraphs (If, Loop, Scan)."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                names |= _names_used(sub.node) | {o.name for o in sub.output}
    return names


def check_parity(original: Path, converted: Path, input_shape: tuple[int, ...]) -> float:
    """Max absolute difference between the two graphs' outputs on one random batch, each run
    by the worker's own backend on the CPU."""
    x = np.random.default_rng(0).uniform(-1, 1, input_shape).astype(np.float32)
    outs = []
    for path in (original, converted):
        backend = OnnxBackend(path, device="cpu")
        try:
            outs.append(backend.run(x))
        finally:
            backend.close()
    return float(np.abs(outs[0] - outs[1]).max())


def bundle_version(
    registry: Registry,
    name: str,
    version: int | None = None,
    *,
    out_root: Path = BUNDLED_ROOT,
    checkpoint: Path | None = None,
    evaluation: dict[str, float] | None = None,
    ship_as: str | None = None,
) -> Path:
    """Write ``out_root/<ship_as or name>/`` from a published version (see the module doc);
    ``evaluation``: metrics to ship instead of the version's (e.g. from ``compare --json``);
    ``ship_as``: the name it is served under (a candidate trained as ``s2p-more`` shipped
    as ``sketch2photo``)."""
    manifest = registry.manifest(name, version)
    source = registry.version_dir(name, manifest.version) / ONNX_FILE
    shipped = ship_as or name
    out = out_root / shipped
    staging = out_root / f".{shipped}.staging"  # renamed to ``out`` once all is written
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _write_bundle(manifest, source, staging, shipped, checkpoint, evaluation)
        old_key, new_key = carry_superseded(out, staging)
        same_generator = old_key is not None and old_key[0] == new_key[0]  # model.onnx's sha256
        if checkpoint is None and same_generator:
            _keep_training_nets(out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log.info("bundled %s v%d into %s", name, manifest.version, out)
    return out


def _keep_training_nets(old: Path, new: Path) -> None:
    """A bundle made again of the same generator (new metrics, say) keeps the training nets
    the old folder held (the caller checks the generator; another's nets would not fit)."""
    from services.trainer.engine.weights import TRAINING_NETS

    if (old / TRAINING_NETS).is_file():
        shutil.copyfile(old / TRAINING_NETS, new / TRAINING_NETS)


def _write_bundle(
    manifest: Manifest,
    source: Path,
    out: Path,
    shipped: str,
    checkpoint: Path | None,
    evaluation: dict[str, float] | None,
) -> None:
    onnx.save(fp16_weights(onnx.load(str(source))), str(out / ONNX_FILE))
    diff = check_parity(source, out / ONNX_FILE, manifest.input.shape(2))
    if diff > PARITY_ATOL:
        raise ValueError(
            f"{manifest.name}: fp16 weights change the output by {diff:.2e} > {PARITY_ATOL:.2e}"
        )
    data = manifest.model_dump(mode="json", exclude={"files", "version", "parent_version"})
    data["name"] = shipped
    if data.get("dataset"):  # a name, not a path of the machine it was trained on
        data["dataset"] = Path(str(data["dataset"])).name
    if evaluation is not None:  # `compare --json` figures replace the in-training ones
        data["metrics"] = {k: float(v) for k, v in evaluation.items()}
    data["metrics"].setdefault("fp16_max_abs_diff", diff)  # kept when re-bundling a bundle
    if manifest.quantized is not None:  # the int8 copy ships as it is (already small)
        shutil.copyfile(source.parent / INT8_ONNX_FILE, out / INT8_ONNX_FILE)
    (out / MANIFEST_FILE).write_text(json.dumps(data, indent=2) + "\n")
    if checkpoint is not None:
        from services.trainer.engine.checkpoint import load_checkpoint
        from services.trainer.engine.weights import TRAINING_NETS, save_training_nets

        save_training_nets(load_checkpoint(checkpoint), out / TRAINING_NETS)
    log.info("%s: fp16 max abs diff %.1e", manifest.name, diff)
