"""Compute accounting, the CPU budget, weights files and ``init_from``, and bundled models."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors import safe_open
from torch import Tensor

from services.trainer.engine.compute import Compute
from services.trainer.engine.loop import train
from services.trainer.engine.weights import (
    TRAINING_NETS,
    init_from,
    onnx_generator,
    pack_checkpoint,
    read_weights,
    resolve,
    save_training_nets,
)
from services.trainer.errors import InitFromError
from services.trainer.publishing.bundle import (
    PARITY_ATOL,
    bundle_version,
    check_parity,
    fp16_weights,
)
from services.trainer.recipes.base import Amp
from shared.backends import load_backend
from shared.bundled import (
    MANIFEST_FILE,
    ONNX_FILE,
    SUPERSEDED_FILE,
    bundled_names,
    publish_bundled,
    read_superseded,
)
from shared.manifest import Manifest
from shared.registry import Registry
from tests.helpers import publish_tiny
from tests.trainer.tiny_runs import (
    load_state,
    one_thread,
    python,
    run_cli,
    subprocess_env,
    tiny_config,
)
from tests.trainer.weights_runs import (
    BUDGET_S,
    NAME,
    FirstRun,
    assert_same,
    differs,
    fp16,
    fresh_recipe,
    make_first_run,
)

# exporting tiny nets warns, on purpose (as in tests/shared/test_export.py)
pytestmark = pytest.mark.filterwarnings(
    "ignore::torch.jit.TracerWarning", "ignore:.*:UserWarning:torch.*"
)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    return make_first_run(tmp_path_factory.mktemp("first"))


# --- compute ------------------------------------------------------------------------------------


def test_compute_adds_to_its_base_and_round_trips() -> None:
    base = {"steps": 10.0, "images_seen": 40.0, "cpu_hours": 1.5, "wall_hours": 2.0}
    compute = Compute(base=dict(base))
    compute.start()
    compute.add(2, 8)
    compute.add(1, 4)
    totals = compute.totals()
    assert (totals["steps"], totals["images_seen"]) == (13, 52)
    assert isinstance(totals["steps"], int)
    assert 1.5 <= totals["cpu_hours"] < 1.6
    assert 2.0 <= totals["wall_hours"] < 2.1
    again = Compute()
    again.load_state_dict(compute.state_dict())
    assert again.totals() == totals
    assert (again.steps, again.images) == (3, 12)


def test_compute_counts_the_cpu_of_child_processes_that_ended() -> None:
    """DataLoader workers are child processes: their CPU is part of what a run costs."""
    compute = Compute()
    compute.start()
    burn = "import time\nwhile time.process_time() < 0.3:\n    pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    compute.add(0, 0)
    assert compute.cpu_s >= 0.25  # os.times counts children in clock ticks (10 ms)


# --- the CPU budget -----------------------------------------------------------------------------


def test_cpu_budget_stops_the_run_and_the_checkpoint_counts_it(first_run: FirstRun) -> None:
    assert 0 < first_run.steps < first_run.total_steps_planned
    compute = first_run.state["compute"]
    assert compute["cpu_s"] >= BUDGET_S
    assert compute["base"] == {}
    totals = compute["totals"]
    assert totals["steps"] == first_run.steps == first_run.state["step"]
    assert totals["images_seen"] == first_run.steps * 2  # batch 2
    assert 0 < totals["cpu_hours"] < 0.01
    manifest = first_run.registry.manifest(NAME)
    assert manifest.steps == first_run.steps
    assert manifest.compute == pytest.approx(totals)
    assert math.isfinite(manifest.metrics["val_l1"])


# --- weights files ------------------------------------------------------------------------------


def test_packed_weights_are_fp16_with_the_runs_metadata(first_run: FirstRun) -> None:
    with safe_open(str(first_run.weights), framework="pt") as f:
        keys = list(f.keys())
        assert {k.split(".", 1)[0] for k in keys} == {"netG", "netD"}
        floats = [f.get_tensor(k) for k in keys]
    assert all(t.dtype == torch.float16 for t in floats if t.is_floating_point())
    nets, meta = read_weights(first_run.weights)
    assert meta["recipe"] == "pix2pix"
    assert json.loads(meta["options"]) == {"ndf": 4, "ngf": 4}
    assert (meta["image_size"], meta["direction"], meta["fit"]) == ("32", "sketch2photo", "resize")
    assert json.loads(meta["compute"]) == first_run.state["compute"]["totals"]
    assert meta["source"] == str(first_run.checkpoint)
    assert all(v.dtype == torch.float32 for v in nets["netG"].values() if v.is_floating_point())
    assert_same(nets["netG"], fp16(first_run.state["nets"]["netG"]))
    # batch norm's step counter stays an integer
    counters = [k for k in nets["netD"] if k.endswith("num_batches_tracked")]
    assert counters
    assert all(nets["netD"][k].dtype == torch.int64 for k in counters)


def test_init_from_a_weights_file_loads_every_net(first_run: FirstRun, tmp_path: Path) -> None:
    recipe = fresh_recipe(tmp_path)
    saved = first_run.state["nets"]
    assert differs(recipe.nets["netG"].state_dict(), saved["netG"])
    totals = init_from(recipe, str(first_run.weights), None)
    assert totals == first_run.state["compute"]["totals"]
    assert_same(recipe.nets["netG"].state_dict(), fp16(saved["netG"]))
    assert_same(recipe.nets["netD"].state_dict(), fp16(saved["netD"]))
    # only weights carry over: optimizers start anew
    assert not recipe.optimizers["G"].state


def test_a_run_from_weights_starts_there_and_counts_compute_cumulatively(
    first_run: FirstRun, tmp_path: Path
) -> None:
    spec = str(first_run.weights)
    with one_thread():
        at_start = train(tiny_config(tmp_path / "a", init_from=spec), should_stop=lambda: True)
    assert (at_start.state, at_start.step) == ("canceled", 0)
    start = load_state(Path(at_start.checkpoint or ""))
    assert_same(start["nets"]["netG"], fp16(first_run.state["nets"]["netG"]))
    assert start["compute"]["totals"]["steps"] == first_run.steps

    with one_thread():
        more = train(tiny_config(tmp_path / "b", init_from=spec, max_steps=3))
    assert (more.state, more.step) == ("finished", 3)
    compute = load_state(Path(more.checkpoint or ""))["compute"]
    first = first_run.state["compute"]["totals"]
    assert compute["base"] == pytest.approx(first)
    assert compute["totals"]["steps"] == first_run.steps + 3
    assert compute["totals"]["images_seen"] == first["images_seen"] + 3 * 2
    assert compute["totals"]["cpu_hours"] >= first["cpu_hours"]


def test_init_from_a_published_version_loads_netg_from_its_onnx(
    first_run: FirstRun, tmp_path: Path
) -> None:
    recipe = fresh_recipe(tmp_path)
    fresh_D = {k: v.clone() for k, v in recipe.nets["netD"].state_dict().items()}
    version = first_run.registry.current(NAME)
    assert version is not None
    onnx_path = first_run.registry.version_dir(NAME, version) / ONNX_FILE
    from_onnx = onnx_generator(onnx_path)
    assert_same(from_onnx, first_run.state["nets"]["netG"])  # fp32, exactly the trained G

    for spec in (NAME, f"{NAME}@{version}"):
        totals = init_from(recipe, spec, first_run.registry)
        assert totals == pytest.approx(first_run.registry.manifest(NAME).compute)
        assert_same(recipe.nets["netG"].state_dict(), first_run.state["nets"]["netG"])
    assert_same(recipe.nets["netD"].state_dict(), fresh_D)  # D starts anew

    with one_thread():  # and through the loop, which resolves names in its registry
        stopped = train(
            tiny_config(tmp_path / "run", init_from=NAME),
            registry=first_run.registry,
            should_stop=lambda: True,
        )
    start = load_state(Path(stopped.checkpoint or ""))
    assert_same(start["nets"]["netG"], first_run.state["nets"]["netG"])
    assert first_run.registry.versions(NAME) == [version]  # a stopped run publishes nothing


def test_init_from_another_recipes_weights_is_refused(first_run: FirstRun, tmp_path: Path) -> None:
    state = {**first_run.state, "recipe": "cyclegan"}
    other = pack_checkpoint(state, tmp_path / "cyclegan.safetensors")
    recipe = fresh_recipe(tmp_path)
    before = {k: v.clone() for k, v in recipe.nets["netG"].state_dict().items()}
    with pytest.raises(ValueError, match="holds cyclegan weights, not pix2pix"):
        init_from(recipe, str(other), None)
    assert_same(recipe.nets["netG"].state_dict(), before)  # nothing loaded


def test_a_discriminator_that_no_longer_fits_is_refused_unless_skipped(
    first_run: FirstRun, tmp_path: Path
) -> None:
    recipe = fresh_recipe(tmp_path, n_layers_D=1)  # the first run's D has 3 layers
    fresh_G = {k: v.clone() for k, v in recipe.nets["netG"].state_dict().items()}
    fresh_D = {k: v.clone() for k, v in recipe.nets["netD"].state_dict().items()}
    with pytest.raises(InitFromError, match=r"netD does not fit .* --init-skip netD"):
        init_from(recipe, str(first_run.weights), None)
    assert_same(recipe.nets["netG"].state_dict(), fresh_G)  # nothing loaded

    totals = init_from(recipe, str(first_run.weights), None, skip=("netD",))
    assert totals == first_run.state["compute"]["totals"]
    assert_same(recipe.nets["netG"].state_dict(), fp16(first_run.state["nets"]["netG"]))
    assert_same(recipe.nets["netD"].state_dict(), fresh_D)

    for typo in ("netG", "netDD"):
        with pytest.raises(InitFromError, match=f"--init-skip {typo}"):
            init_from(recipe, str(first_run.weights), None, skip=(typo,))


def test_the_cli_says_which_net_to_skip_and_then_trains(
    first_run: FirstRun, tmp_path: Path
) -> None:
    args = [
        "--model-root", str(tmp_path / "models"), "train", "--recipe", "pix2pix",
        "--data", "synthetic://10?val=2", "--set", "image_size=32", "--set", "batch_size=2",
        "--set", "num_workers=0", "--set", "options.ngf=4", "--set", "options.ndf=4",
        "--set", "options.n_layers_D=1", "--init-from", str(first_run.weights),
        "--max-steps", "1", "--publish", "never",
    ]  # fmt: skip
    with one_thread():
        code, _, err = run_cli(*args, "--run-dir", str(tmp_path / "refused"))
    assert code == 2
    assert "--init-skip netD" in err
    assert "Traceback" not in err
    with one_thread():
        code, out, _ = run_cli(*args, "--run-dir", str(tmp_path / "run"), "--init-skip", "netD")
    assert code == 0
    final = json.loads(out)
    assert (final["state"], final["step"]) == ("finished", 1)
    compute = load_state(Path(final["checkpoint"]))["compute"]
    assert compute["totals"]["steps"] == first_run.steps + 1


def test_weights_without_a_generator_are_refused(first_run: FirstRun, tmp_path: Path) -> None:
    nets = {"netD": first_run.state["nets"]["netD"]}
    only_d = pack_checkpoint({**first_run.state, "nets": nets}, tmp_path / "d.safetensors")
    with pytest.raises(ValueError, match="no generator"):
        init_from(fresh_recipe(tmp_path), str(only_d), None)


def test_a_missing_spec_is_file_not_found(first_run: FirstRun, tmp_path: Path) -> None:
    recipe = fresh_recipe(tmp_path)
    with pytest.raises(FileNotFoundError, match="--init-from"):
        init_from(recipe, str(tmp_path / "nope.safetensors"), None)
    with pytest.raises(FileNotFoundError, match="not a file, a folder"):
        init_from(recipe, "no-such-model", first_run.registry)
    with pytest.raises(FileNotFoundError):
        init_from(recipe, NAME, None)  # a model name needs a registry
    with pytest.raises(FileNotFoundError, match="no version 99"):
        init_from(recipe, f"{NAME}@99", first_run.registry)
    with pytest.raises(FileNotFoundError, match="not a file, a folder"):
        init_from(recipe, f"{NAME}@latest", first_run.registry)
    with pytest.raises(FileNotFoundError), one_thread():
        train(tiny_config(tmp_path / "run", init_from="no-such-model"))


def test_a_missing_weights_path_is_file_not_found_with_a_registry(
    first_run: FirstRun, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        init_from(fresh_recipe(tmp_path), str(tmp_path / "typo.safetensors"), first_run.registry)


def test_pack_stores_the_ema_generator_as_netg_and_init_fills_both(tmp_path: Path) -> None:
    recipe = fresh_recipe(tmp_path, ema_beta=0.9)
    batch = {"A": torch.rand(2, 3, 32, 32) * 2 - 1, "B": torch.rand(2, 3, 32, 32) * 2 - 1}
    with one_thread():
        recipe.train_step(batch, Amp("off", "cpu"))
    nets = {name: net.state_dict() for name, net in recipe.nets.items()}
    assert differs(nets["netG"], nets["netG_ema"])
    state = {"recipe": "pix2pix", "config": recipe.config.model_dump(mode="json"), "nets": nets}
    packed = pack_checkpoint(state, tmp_path / "ema.safetensors")
    loaded, _ = read_weights(packed)
    assert set(loaded) == {"netG", "netD"}  # the EMA copy is not stored twice
    assert_same(loaded["netG"], fp16(nets["netG_ema"]))

    target = fresh_recipe(tmp_path, seed=7, ema_beta=0.9)
    init_from(target, str(packed), None)
    assert_same(target.nets["netG"].state_dict(), fp16(nets["netG_ema"]))
    assert_same(target.nets["netG_ema"].state_dict(), fp16(nets["netG_ema"]))
    plain = fresh_recipe(tmp_path, seed=8)  # a recipe without EMA takes it as its netG
    init_from(plain, str(packed), None)
    assert "netG_ema" not in plain.nets
    assert_same(plain.nets["netG"].state_dict(), fp16(nets["netG_ema"]))


def test_a_pack_that_fails_while_writing_leaves_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = fresh_recipe(tmp_path)
    nets = {name: net.state_dict() for name, net in recipe.nets.items()}
    state = {"recipe": "pix2pix", "config": recipe.config.model_dump(mode="json"), "nets": nets}
    out = pack_checkpoint(state, tmp_path / "w" / "g.safetensors")
    before = out.read_bytes()

    def disk_full(tensors: dict[str, Tensor], filename: str, metadata: dict[str, str]) -> None:
        Path(filename).write_bytes(b"half a file")  # what an interrupted write leaves
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("services.trainer.engine.weights.save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        pack_checkpoint(state, out)
    assert out.read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["g.safetensors"]  # no temporary left
    loaded, _ = read_weights(out)
    assert_same(loaded["netG"], fp16(nets["netG"]))


# --- bundled models -----------------------------------------------------------------------------


def test_fp16_weights_halve_the_onnx_file_and_keep_its_output(
    first_run: FirstRun, tmp_path: Path
) -> None:
    version = first_run.registry.current(NAME)
    assert version is not None
    source = first_run.registry.version_dir(NAME, version) / ONNX_FILE
    model = fp16_weights(onnx.load(str(source)))
    onnx.checker.check_model(model)
    halved = tmp_path / "half.onnx"
    onnx.save(model, str(halved))
    ratio = halved.stat().st_size / source.stat().st_size
    assert 0.4 < ratio < 0.6, ratio
    inits = model.graph.initializer
    assert inits
    assert all(i.data_type != onnx.TensorProto.FLOAT for i in inits)
    assert sum(n.op_type == "Cast" for n in model.graph.node) >= len(inits) // 2
    diff = check_parity(source, halved, (2, 3, 32, 32))
    assert 0 < diff < 1e-3
    # the fp16 file still names its weights after the generator's state dict
    assert_same(onnx_generator(halved), fp16(first_run.state["nets"]["netG"]))


def test_a_bundle_failing_its_parity_check_leaves_the_shipped_one_as_it_was(
    first_run: FirstRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled_root = tmp_path / "bundled"
    shipped = bundle_version(first_run.registry, NAME, out_root=bundled_root)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    monkeypatch.setattr("services.trainer.publishing.bundle.PARITY_ATOL", 0.0)

    with pytest.raises(ValueError, match="fp16 weights change the output"):
        bundle_version(first_run.registry, NAME, out_root=bundled_root)

    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    assert [p.name for p in bundled_root.iterdir()] == [NAME]  # no half-written folder


def test_the_bundled_training_nets_are_every_net_but_the_generators(tmp_path: Path) -> None:
    recipe = fresh_recipe(tmp_path, ema_beta=0.9, lambda_attr=1.0)
    state = {
        "recipe": "pix2pix",
        "nets": {name: net.state_dict() for name, net in recipe.nets.items()},
        "compute": {"totals": {"steps": 7}},
    }
    assert set(state["nets"]) == {"netG", "netG_ema", "netD", "netC"}
    nets, meta = read_weights(save_training_nets(state, tmp_path / TRAINING_NETS))
    assert set(nets) == {"netD", "netC"}  # the generators ship as ONNX
    assert_same(nets["netC"], fp16(recipe.nets["netC"].state_dict()))
    assert json.loads(meta["compute"]) == {"steps": 7}


def test_bundle_then_publish_bundled_once_and_serve_it(first_run: FirstRun, tmp_path: Path) -> None:
    bundled_root = tmp_path / "bundled"
    folder = bundle_version(
        first_run.registry, NAME, out_root=bundled_root, checkpoint=first_run.checkpoint
    )
    assert folder == bundled_root / NAME
    assert {p.name for p in folder.iterdir()} == {ONNX_FILE, MANIFEST_FILE, TRAINING_NETS}
    assert bundled_names(bundled_root) == [NAME]
    data = json.loads((folder / MANIFEST_FILE).read_text())
    assert not {"files", "version", "parent_version"} & set(data)
    assert 0 < data["metrics"]["fp16_max_abs_diff"] <= PARITY_ATOL
    assert data["compute"] == pytest.approx(first_run.state["compute"]["totals"])

    other = Registry(tmp_path / "volume")
    (published,) = publish_bundled(other, root=bundled_root)
    assert (published.name, published.version) == (NAME, 1)
    assert other.current(NAME) == 1
    assert publish_bundled(other, root=bundled_root) == []  # already served: idempotent
    assert other.versions(NAME) == [1]
    with pytest.raises(FileNotFoundError, match="no bundled model"):
        publish_bundled(other, ["nope"], root=bundled_root)

    manifest = other.verify(NAME, 1)
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    served = load_backend(other.version_dir(NAME, 1), manifest, prefer="onnx", device="cpu")
    version = first_run.registry.current(NAME) or 0
    original = load_backend(
        first_run.registry.version_dir(NAME, version),
        first_run.registry.manifest(NAME),
        prefer="onnx",
        device="cpu",
    )
    try:
        out, want = served.run(x), original.run(x)
    finally:
        served.close()
        original.close()
    assert out.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(out, want, atol=PARITY_ATOL)

    # and training continues from the bundle: netG from the fp16 ONNX, netD beside it
    recipe = fresh_recipe(tmp_path)
    totals = init_from(recipe, str(folder), None)
    assert totals == pytest.approx(first_run.state["compute"]["totals"])
    assert_same(recipe.nets["netG"].state_dict(), fp16(first_run.state["nets"]["netG"]))
    assert_same(recipe.nets["netD"].state_dict(), fp16(first_run.state["nets"]["netD"]))
    nets, meta = resolve(str(folder), None)
    assert meta["recipe"] == "pix2pix"
    assert set(nets) == {"netG", "netD"}


def test_a_bundle_made_again_keeps_its_training_nets_only_for_the_same_generator(
    first_run: FirstRun, tmp_path: Path
) -> None:
    bundled_root = tmp_path / "bundled"
    folder = bundle_version(
        first_run.registry, NAME, out_root=bundled_root, checkpoint=first_run.checkpoint
    )
    nets = (folder / TRAINING_NETS).read_bytes()
    volume = Registry(tmp_path / "volume")
    publish_bundled(volume, root=bundled_root)

    bundle_version(first_run.registry, NAME, out_root=bundled_root, evaluation={"fid": 1.0})
    assert (folder / TRAINING_NETS).read_bytes() == nets  # new metrics, the same nets
    assert json.loads((folder / MANIFEST_FILE).read_text())["metrics"]["fid"] == 1.0
    assert not (folder / SUPERSEDED_FILE).exists()  # the same graph is no earlier copy
    assert publish_bundled(volume, root=bundled_root) == []

    other = Registry(tmp_path / "other")
    publish_tiny(other, NAME, tmp_path, seed=3, size=32)  # another generator, no checkpoint
    bundle_version(other, NAME, out_root=bundled_root)
    assert not (folder / TRAINING_NETS).exists()  # the old nets would not fit it
    assert len(read_superseded(folder)) == 1
    (upgrade,) = publish_bundled(volume, root=bundled_root)
    assert (upgrade.version, volume.current(NAME)) == (2, 2)


NO_TORCH = """
import runpy, sys
sys.modules["torch"] = None  # any `import torch` now raises ImportError
try:
    import torch
except ImportError:
    pass
else:
    sys.exit(3)
{setup}
sys.argv = ["python -m shared.bundled"]
runpy.run_module("shared.bundled", run_name="__main__", alter_sys=True)
"""

REDIRECT_ROOT = """
from pathlib import Path
import shared.bundled as bundled
root = Path({root!r})
bundled.bundled_names.__defaults__ = (root,)
bundled.publish_bundled.__kwdefaults__["root"] = root
"""


def run_without_torch(model_root: Path, setup: str = "") -> subprocess.CompletedProcess[str]:
    code = NO_TORCH.format(setup=setup)
    env = subprocess_env(S2I_MODEL_ROOT=str(model_root), S2I_LOG_LEVEL="INFO")
    return subprocess.run(
        [python(), "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_python_m_shared_bundled_needs_no_torch(tmp_path: Path) -> None:
    done = run_without_torch(tmp_path / "models")
    assert done.returncode == 0, done.stderr
    assert "torch" not in done.stderr.lower()


def test_the_no_torch_wrapper_catches_a_torch_import(tmp_path: Path) -> None:
    done = run_without_torch(tmp_path / "models", "import services.trainer.engine.weights")
    assert done.returncode == 1
    assert "import of torch halted" in done.stderr


def test_python_m_shared_bundled_publishes_a_bundle_without_torch(
    first_run: FirstRun, tmp_path: Path
) -> None:
    """The same entry point with the bundled folder pointed at a fresh bundle."""
    bundled_root = tmp_path / "bundled"
    bundle_version(first_run.registry, NAME, out_root=bundled_root)
    model_root = tmp_path / "models"
    setup = REDIRECT_ROOT.format(root=str(bundled_root))
    done = run_without_torch(model_root, setup)
    assert done.returncode == 0, done.stderr
    assert f"published {NAME} v1" in done.stderr
    registry = Registry(model_root)
    assert registry.current(NAME) == 1
    manifest: Manifest = registry.verify(NAME, 1)
    assert manifest.recipe == "pix2pix"
    again = run_without_torch(model_root, setup)
    assert again.returncode == 0, again.stderr
    assert registry.versions(NAME) == [1]


def test_a_candidate_ships_under_the_served_name(first_run: FirstRun, tmp_path: Path) -> None:
    folder = bundle_version(first_run.registry, NAME, out_root=tmp_path, ship_as="sketch2photo")
    assert folder == tmp_path / "sketch2photo"
    assert json.loads((folder / MANIFEST_FILE).read_text())["name"] == "sketch2photo"
    (published,) = publish_bundled(Registry(tmp_path / "volume"), root=tmp_path)
    assert published.name == "sketch2photo"
