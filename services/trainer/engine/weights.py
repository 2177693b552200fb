"""Weights files: what the repository keeps to continue training, and ``--init-from``.

A weights file is one safetensors file holding a run's nets in fp16 (``<net>.<param>`` keys;
for a recipe with an EMA generator, "netG" holds the EMA weights, which are the better
starting point, and the EMA copy is not stored twice) with metadata:

    recipe, options (the recipe options, JSON), image_size, direction, fit,
    compute (cumulative, ``services.trainer.engine.compute``), source (the checkpoint it came from)

    python -m services.trainer pack --checkpoint var/runs/X/checkpoints/latest.pt \\
        --out weights/faces/sketch2photo.safetensors
    python -m services.trainer train --config configs/faces-sketch2photo.yaml \\
        --init-from weights/faces/sketch2photo.safetensors

``--init-from`` also takes a bundled model (``shared/bundled/<name>``: netG from its ONNX
weights, the nets only training uses from ``training_nets.safetensors`` beside it), a
published version (``NAME`` or ``NAME@VERSION`` in the model volume: netG only, the
discriminator starts anew), or an attribute classifier file (``evaluation/attributes.py``,
loaded as pix2pix's netC; never the evaluation's own classifier).
Optimizers, schedules and the step count start anew either way; only the weights and the
compute totals carry over (``--resume`` is the exact continuation of one run). ``--init-skip
NET`` leaves a net out, e.g. the 128 px run's netD when the 256 px run has another patch size:

    python -m services.trainer train ... --init-from w.safetensors --init-skip netD \\
        --set image_size=256 --set options.n_layers_D=1

``--init-from`` may be given more than once: the sources are read in order, a later one's
nets replace an earlier one's, and their compute totals add up (what every input cost), e.g.
the bundled generator with a netC trained alone on the real photos:

    python -m services.trainer train ... --init-from sketch2photo \\
        --init-from var/weights/fs2k-netC-s2.safetensors --set options.lambda_attr=40
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from services.trainer.engine.compute import KEYS
from services.trainer.errors import InitFromError, InitFromNotFoundError
from services.trainer.recipes.attribute_critic import CRITIC_WIDTH
from services.trainer.recipes.base import Recipe, unwrap
from shared.bundled import BUNDLED_ROOT, MANIFEST_FILE
from shared.manifest import MODEL_NAME_RE, ONNX_FILE
from shared.registry import Registry, RegistryError, atomic_write

log = logging.getLogger(__name__)

EMA = "netG_ema"
# beside a bundled model's ONNX file: its discriminator(s) and netC (save_training_nets)
TRAINING_NETS = "training_nets.safetensors"


def _fp16_tensors(nets: dict[str, dict[str, Tensor]]) -> dict[str, Tensor]:
    """{"<net>.<param>": tensor}, floating point ones in fp16, ready for safetensors."""
    return {
        f"{net}.{key}": (v.half() if v.is_floating_point() else v).contiguous()
        for net, params in nets.items()
        for key, v in params.items()
    }


def _save(tensors: dict[str, Tensor], out: Path, meta: dict[str, str]) -> None:
    """safetensors ``out``, written whole or not at all: an interrupted pack leaves the previous
    file (which a running --init-from may be reading) as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def pack_checkpoint(state: dict[str, Any], out: Path, *, source: str = "") -> Path:
    """Write a checkpoint's nets (fp16; the EMA generator as netG) and metadata to ``out``."""
    nets: dict[str, dict[str, Tensor]] = dict(state["nets"])
    if EMA in nets:
        nets["netG"] = nets.pop(EMA)
    tensors = _fp16_tensors(nets)
    config = state["config"]
    compute = state.get("compute", {})
    meta = {
        "recipe": state["recipe"],
        "options": json.dumps(config.get("options", {}), sort_keys=True),
        "image_size": str(config.get("image_size")),
        "direction": str(config.get("direction")),
        "fit": str(config.get("fit", "resize")),
        "compute": json.dumps(compute.get("totals", {})),
        "source": source,
    }
    _save(tensors, out, meta)
    log.info("packed %d tensors (%s) into %s", len(tensors), ", ".join(sorted(nets)), out)
    return out


def read_weights(path: Path) -> tuple[dict[str, dict[str, Tensor]], dict[str, str]]:
    """{net: state_dict (fp32)} and the metadata of a weights file."""
    nets: dict[str, dict[str, Tensor]] = {}
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
        for key in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
            net, param = key.split(".", 1)
            v = f.get_tensor(key)
            nets.setdefault(net, {})[param] = v.float() if v.is_floating_point() else v
    return nets, meta


def onnx_generator(path: Path) -> dict[str, Tensor]:
    """netG's state dict from an exported ONNX file: its initializers are named by the serving
    wrapper's keys ("netG.<key>"; "__fp16"-suffixed in a bundled file), fp32 either way."""
    import onnx
    from onnx import numpy_helper

    state = {}
    for init in onnx.load(str(path)).graph.initializer:
        key = init.name.removesuffix("__fp16")
        if key.startswith("netG."):
            array = numpy_helper.to_array(init).astype("float32")
            state[key.removeprefix("netG.")] = torch.from_numpy(array.copy())
    return state


Nets = dict[str, dict[str, Tensor]]


def _folder(folder: Path) -> tuple[Nets, dict[str, str]]:
    """A bundled model folder (``shared/bundled/<name>``) or a published version folder."""
    nets = {"netG": onnx_generator(folder / ONNX_FILE)}
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    meta = {"recipe": manifest["recipe"], "compute": json.dumps(manifest.get("compute", {}))}
    if (folder / TRAINING_NETS).is_file():
        nets.update(read_weights(folder / TRAINING_NETS)[0])
    return nets, meta


def _attribute_critic(path: Path) -> tuple[Nets, dict[str, str]]:
    """An attribute classifier file as pix2pix's netC: its weights do not depend on the size it
    reads, so its width and attributes must match the recipe's netC (``CRITIC_WIDTH``, FS2K)."""
    from services.trainer.evaluation.attribute_net import AttributeClassifier

    classifier = AttributeClassifier.load(path)
    meta = {"compute": json.dumps(classifier.compute), "reads": classifier.reads}
    return {"netC": classifier.state_dict()}, meta


def _is_attribute_classifier(path: Path) -> bool:
    from services.trainer.evaluation.attribute_net import FORMAT

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("format") == FORMAT


def _refuse_the_judge(netC: dict[str, Tensor], origin: str) -> None:
    """The evaluation's own attribute classifiers (of photos, of sketches), as netC from any
    source, would make the attribute metrics a training target."""
    from services.trainer.evaluation.attribute_net import JUDGE_WEIGHTS, AttributeClassifier

    for path in JUDGE_WEIGHTS.values():
        if not path.is_file():
            continue
        judge = AttributeClassifier.load(path).state_dict()
        if judge.keys() == netC.keys() and all(torch.equal(judge[k], netC[k]) for k in judge):
            raise InitFromError(
                f"--init-from {origin}: its netC is the evaluation's attribute classifier "
                f"({path.name}), which scores the models; train one of its own: python -m "
                "services.trainer.evaluation.attributes --seed N --out FILE"
            )


def resolve(spec: str, registry: Registry | None) -> tuple[Nets, dict[str, str]]:
    """Nets and metadata named by ``spec``: a weights file, an attribute classifier file, a
    model folder, a bundled model's name, or NAME[@VERSION] in ``registry``."""
    path = Path(spec)
    if path.is_file():
        return _attribute_critic(path) if _is_attribute_classifier(path) else read_weights(path)
    if path.is_dir():
        return _folder(path)
    if (BUNDLED_ROOT / spec / ONNX_FILE).is_file():
        return _folder(BUNDLED_ROOT / spec)
    name, _, version = spec.partition("@")
    if (
        registry is None
        or not MODEL_NAME_RE.match(name)
        or (version and not version.isdigit())
        or (registry.current(name) is None and not version)
    ):
        raise InitFromNotFoundError(
            f"--init-from {spec}: not a file, a folder, a bundled model or a served model"
        )
    try:
        number = registry.manifest(name, int(version) if version else None).version
    except RegistryError as exc:  # e.g. NAME@99
        raise InitFromNotFoundError(f"--init-from {spec}: {exc}") from exc
    return _folder(registry.version_dir(name, number))


def _misfit_hint(name: str) -> str:
    if name == "netC":
        return f"netC's width or attributes differ (netC is width {CRITIC_WIDTH}, FS2K's)"
    return "its options differ, e.g. n_layers_D or num_D"


def _add_compute(total: dict[str, float], meta: dict[str, str], spec: str) -> None:
    """Add a source's compute totals (engine.compute.KEYS) to ``total``."""
    try:
        for key, value in json.loads(meta.get("compute") or "{}").items():
            if key in KEYS:
                total[key] = total.get(key, 0.0) + float(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InitFromError(f"--init-from {spec}: unreadable compute totals ({exc})") from exc


def init_from(
    recipe: Recipe,
    specs: str | Sequence[str],
    registry: Registry | None,
    skip: tuple[str, ...] = (),
) -> dict[str, float]:
    """Load the weights named by ``specs`` (one or several, see ``resolve``) into ``recipe``'s
    nets and return the compute totals of the sources, summed. Sources are read in order and a
    later one's nets replace an earlier one's; each must supply a net that is loaded (a source
    fully replaced, skipped or given twice is an error, so no cost is counted twice). Nets the
    sources lack (e.g. D of a published version) and nets named in ``skip`` (e.g. a
    discriminator whose options changed) keep their fresh initialisation; a net whose shapes
    differ from its source's is refused, naming ``skip``."""
    specs = (specs,) if isinstance(specs, str) else tuple(specs)
    nets: Nets = {}
    origin: dict[str, str] = {}  # net -> the source it comes from
    metas: dict[str, dict[str, str]] = {}
    for spec in specs:
        found, metas[spec] = resolve(spec, registry)
        if metas[spec].get("recipe", recipe.name) != recipe.name:
            raise InitFromError(f"{spec} holds {metas[spec]['recipe']} weights, not {recipe.name}")
        nets.update(found)
        origin.update(dict.fromkeys(found, spec))
    unknown = sorted(set(skip) - set(nets) - set(recipe.nets))
    if unknown or "netG" in skip:
        raise InitFromError(
            f"--init-skip {', '.join(unknown or ['netG'])}: skip one of the discriminators or "
            f"helpers {sorted(set(nets) - {'netG'})}, never the generator"
        )
    if EMA in recipe.nets and EMA not in nets and "netG" in nets:
        nets[EMA] = nets["netG"]
        origin[EMA] = origin["netG"]
    if "netG" not in nets or "netG" not in recipe.nets:
        label = " + ".join(specs)
        raise InitFromError(f"{label} has no generator for {recipe.name} (nets: {sorted(nets)})")
    chosen = {n: p for n, p in nets.items() if n in recipe.nets and n not in skip}
    supplying = {origin[n] for n in chosen}
    for spec in specs:  # every source supplies something, once
        if spec not in supplying or specs.count(spec) > 1:
            raise InitFromError(
                f"--init-from {spec} supplies no net this run loads: it is given twice, or "
                "each of its nets is replaced by a later source, skipped, or not one of this "
                f"run's ({', '.join(sorted(recipe.nets))})"
            )
    for name, params in chosen.items():  # check every shape before loading any
        mine = unwrap(recipe.nets[name]).state_dict()
        if mine.keys() != params.keys() or any(mine[k].shape != v.shape for k, v in params.items()):
            raise InitFromError(
                f"{origin[name]}'s {name} does not fit this run's {name} ({_misfit_hint(name)}); "
                f"leave it out with --init-skip {name}"
            )
    if "netC" in chosen:
        _refuse_the_judge(chosen["netC"], origin["netC"])
        from services.trainer.evaluation.attribute_net import made_by

        reads = metas[origin["netC"]].get("reads")  # a classifier file's: "photo" or "sketch"
        makes = made_by(recipe.config.direction)
        if reads is not None and reads != makes:
            raise InitFromError(
                f"{origin['netC']} was trained on {reads} images; this run's netC judges the "
                f"{makes} images it makes (train one with --reads {makes})"
            )
    for name, params in chosen.items():
        unwrap(recipe.nets[name]).load_state_dict(params)
    log.info("initialised %s", ", ".join(f"{n} from {origin[n]}" for n in sorted(chosen)))
    compute: dict[str, float] = {}
    for spec in specs:
        _add_compute(compute, metas[spec], spec)
    return compute


def save_training_nets(state: dict[str, Any], out: Path) -> Path:
    """A checkpoint's nets that only training uses, in fp16, with the run's compute totals:
    every net but the generators ("netG*", which the ONNX graph holds), i.e. the
    discriminators ("netD*") and pix2pix's attribute critic ("netC")."""
    tensors = _fp16_tensors({n: p for n, p in state["nets"].items() if not n.startswith("netG")})
    meta = {
        "recipe": state["recipe"],
        "compute": json.dumps(state.get("compute", {}).get("totals", {})),
    }
    _save(tensors, out, meta)
    return out
