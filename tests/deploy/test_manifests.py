"""The Kustomize overlays under deploy/: each renders, every object is valid Kubernetes, and
the objects fit together (selectors, ports, probes, the autoscaler, ponder's own flags)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from server.args import ServerArgs
from server.cli import parse_args
from server.shutdown import BACKSTOP_SECONDS
from tests.deploy.conftest import REPO, run_tool

Obj = dict[str, Any]

OVERLAYS = ("cpu", "gpu")
# The oldest Kubernetes the manifests are meant for, and the newest the validator bundles.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
DASHBOARD = REPO / "deploy" / "base" / "grafana" / "ponder-dashboard.json"
VLLM_IMAGE = "vllm/vllm-openai:v0.26.0"

_DURATION = r"^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
# kubernetes-validate knows only built-in kinds. ServiceMonitor is a Prometheus Operator CRD:
# this is the part of its schema (monitoring.coreos.com/v1) the manifests use, written from
# the CRD's field list; unknown keys are refused so that a typo fails here, not in a cluster.
SERVICE_MONITOR_SCHEMA: Obj = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        },
                        "matchExpressions": {"type": "array"},
                    },
                },
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "honorLabels": {"type": "boolean"},
                            "authorization": {"type": "object"},
                            "tlsConfig": {"type": "object"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                        },
                    },
                },
            },
        },
    },
}


def render(overlay: str) -> list[Obj]:
    """The objects ``kubectl kustomize deploy/overlays/<overlay>`` renders."""
    out = run_tool("kubectl", "kustomize", f"deploy/overlays/{overlay}")
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> list[Obj]:
    """One overlay's rendered objects (each test runs once per overlay)."""
    return render(str(request.param))


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    """The objects of one kind."""
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[Obj], kind: str, name: str) -> Obj:
    """The one object of ``kind`` called ``name``."""
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def container(deployment: Obj, name: str) -> Obj:
    """A container of a Deployment's pod template."""
    spec = deployment["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == name)


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects an object with these labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def env_values(c: Obj) -> Iterator[tuple[str, str | None]]:
    """A container's env as (name, literal value or None when it comes from elsewhere)."""
    for var in c.get("env", []):
        yield var["name"], var.get("value")


def test_every_object_is_valid(rendered: list[Obj]) -> None:
    """Built-in kinds pass kubernetes-validate's strict schemas; ServiceMonitors ours."""
    for obj in rendered:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "ServiceMonitor":
            jsonschema.validate(obj, SERVICE_MONITOR_SCHEMA)
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{name} on Kubernetes {version}: {e.message} at {list(e.path)}")
            except kubernetes_validate.SchemaNotFoundError:
                pytest.fail(f"{name}: no schema for {obj['apiVersion']} in Kubernetes {version}")


def test_services_select_a_deployment_and_name_its_port(rendered: list[Obj]) -> None:
    """Every Service selects exactly one Deployment's pods and targets a named port there."""
    for service in of_kind(rendered, "Service"):
        selector = service["spec"]["selector"]
        backends = [
            d
            for d in of_kind(rendered, "Deployment")
            if selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(backends) == 1, service["metadata"]["name"]
        containers = backends[0]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for c in containers for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_deployments_select_their_own_pods(rendered: list[Obj]) -> None:
    """A Deployment's selector matches its template and no other Deployment's."""
    deployments = of_kind(rendered, "Deployment")
    for d in deployments:
        selector = d["spec"]["selector"]["matchLabels"]
        matched = [
            e for e in deployments if selects(selector, e["spec"]["template"]["metadata"]["labels"])
        ]
        assert matched == [d]


def test_service_monitors_scrape_metrics_on_a_service_port(rendered: list[Obj]) -> None:
    """Each ServiceMonitor selects a Service and scrapes /metrics on one of its named ports."""
    monitors = of_kind(rendered, "ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} >= {"ponder"}
    for monitor in monitors:
        spec = monitor["spec"]
        services = [
            s
            for s in of_kind(rendered, "Service")
            if selects(spec["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]
        assert len(services) == 1, monitor["metadata"]["name"]
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"


def test_autoscaler_scales_ponder_on_searches_in_flight(rendered: list[Obj]) -> None:
    """The HPA targets the ponder Deployment (which leaves `replicas` to it) on the Pods
    metric ponder_requests_in_flight."""
    hpa = named(rendered, "HorizontalPodAutoscaler", "ponder")
    target = hpa["spec"]["scaleTargetRef"]
    deployment = named(rendered, target["kind"], target["name"])
    assert "replicas" not in deployment["spec"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "ponder_requests_in_flight"


def test_ponder_pod_probes_health_and_outlasts_the_drain(rendered: list[Obj]) -> None:
    """Probes GET /health on the http port; the grace period covers the preStop pause, the
    drain and the shutdown backstop; the pod runs as the image's non-root user."""
    deployment = named(rendered, "Deployment", "ponder")
    pod = deployment["spec"]["template"]["spec"]
    c = container(deployment, "ponder")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    drain = float(dict(env_values(c)).get("PONDER_DRAIN_SECONDS") or ServerArgs().drain_seconds)
    pause = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] > pause + drain + BACKSTOP_SECONDS
    assert pod["securityContext"]["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+)", (REPO / "docker" / "Dockerfile.cpu").read_text(), re.M)
    assert user is not None and pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {p["containerPort"] for p in c["ports"]} == {8000}


def test_ponder_args_and_env_are_ponder_settings(rendered: list[Obj]) -> None:
    """The container's args parse as `ponder serve` flags and every PONDER_* variable names a
    setting, so a renamed flag fails here rather than in a crash-looping pod."""
    c = container(named(rendered, "Deployment", "ponder"), "ponder")
    env = dict(env_values(c))
    for name in env:
        if name.startswith("PONDER_"):
            assert name.removeprefix("PONDER_").lower() in ServerArgs.model_fields, name
    # $(VAR) is expanded by the kubelet from the container's env
    args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1)) or "x", a) for a in c["args"]]
    parse_args(["serve", *args])


def test_dashboard_configmap_is_the_dashboard_file(rendered: list[Obj]) -> None:
    """Grafana's sidecar finds the dashboard by label, under a stable name, and it is the same
    file docker/compose.yaml mounts."""
    cm = named(rendered, "ConfigMap", "ponder-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"] == {"ponder-dashboard.json": DASHBOARD.read_text()}
    assert json.loads(cm["data"]["ponder-dashboard.json"])["uid"] == "ponder"


def test_cpu_overlay_runs_the_packaged_model_on_its_cores() -> None:
    """CPU: the ponder-cpu image, engine auto on the packaged model (no --model), and as many
    llama.cpp threads as the CPU limit, read from the limit (one number to change)."""
    objects = render("cpu")
    c = container(named(objects, "Deployment", "ponder"), "ponder")
    assert c["image"].split(":")[0] == "ponder-cpu"
    assert c["args"] == []
    assert [d["metadata"]["name"] for d in of_kind(objects, "Deployment")] == ["ponder"]
    threads = next(v for v in c["env"] if v["name"] == "PONDER_THREADS")
    limit = threads["valueFrom"]["resourceFieldRef"]
    assert (limit.get("containerName"), limit["resource"]) == ("ponder", "limits.cpu")
    assert limit["divisor"] == "1"  # whole CPUs: "4", not "4000" millicores
    assert c["resources"]["limits"]["cpu"].isdigit()  # a fractional limit would round up


def test_gpu_overlay_puts_ponder_in_front_of_vllm() -> None:
    """GPU: vLLM replicas on one GPU each with prefix caching and /health probes, scraped by
    their own ServiceMonitor; ponder's upstream engine calls their Service and tokenizes with
    the model they serve."""
    objects = render("gpu")
    vllm = named(objects, "Deployment", "vllm")
    engine = container(vllm, "vllm")
    assert engine["image"] == VLLM_IMAGE
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--enable-prefix-caching" in engine["args"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert engine[probe]["httpGet"]["path"] == "/health"
    named(objects, "ServiceMonitor", "vllm")
    service = named(objects, "Service", "vllm")
    ponder = container(named(objects, "Deployment", "ponder"), "ponder")
    args = ponder["args"]
    assert args[args.index("--engine") + 1] == "upstream"
    upstream = args[args.index("--upstream") + 1]
    assert upstream == f"http://vllm:{service['spec']['ports'][0]['port']}"
    # the same model on both sides: vLLM's --model and ponder's --tokenizer read one key
    model = next(v for v in engine["env"] if v["name"] == "VLLM_MODEL")
    assert "configMapKeyRef" in model["valueFrom"]
    assert model in ponder["env"]
    assert engine["args"][engine["args"].index("--model") + 1] == "$(VLLM_MODEL)"
    assert args[args.index("--tokenizer") + 1] == "$(VLLM_MODEL)"
