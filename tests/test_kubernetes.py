"""The Kubernetes base (deploy/kubernetes, issue 24.5), rendered and validated; never run on a
cluster here (none is reachable).

- The committed files are what ``render.py`` makes of docker-compose.yml today (no drift).
- Every core object validates against Kubernetes' own OpenAPI schemas (``kubernetes-validate``,
  strict: an unknown field fails) for the oldest and newest versions the docs name.
- KEDA's ``ScaledObject``/``TriggerAuthentication`` and the Prometheus Operator's
  ``ServiceMonitor`` (custom resources: no schema ships with Kubernetes) are checked against the
  fields their documentation lists (https://keda.sh/docs/2.16/concepts/scaling-deployments/,
  https://keda.sh/docs/2.16/scalers/redis-lists/), every reference resolved.
- Limits equal compose's, converted here independently of the renderer; probes; Secret keys.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel, ConfigDict

ROOT = Path(__file__).resolve().parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.28.0", "1.37.0")


def objects(folder: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` gives for a base that only lists resources: their objects."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "resources"}, "transformers need kustomize here"
    out = []
    for name in kustomization["resources"]:
        out += [o for o in yaml.safe_load_all((folder / name).read_text()) if o]
    return out


BASE = objects(KUBE / "base")
MONITORS = objects(KUBE / "components" / "servicemonitor")


def by_kind(kind: str, objs: list[dict[str, Any]] = BASE) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def test_the_committed_base_is_what_compose_renders_to() -> None:
    # the installed capabilities only (the suite adds a test-only one through the environment)
    env = {k: v for k, v in os.environ.items() if k != "MEDIAFLEET_EXTRA_CAPABILITIES"}
    done = subprocess.run(
        [sys.executable, str(KUBE / "render.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_every_core_object_validates_against_the_kubernetes_schemas(version: str) -> None:
    core = [o for o in BASE if "/" not in o["apiVersion"] or o["apiVersion"].startswith("apps/")]
    assert {o["kind"] for o in core} == {"Deployment", "StatefulSet", "Service", "PersistentVolumeClaim"}
    for obj in core:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): {exc.message} at {list(exc.path)}"
            )
    print(f"\n[kubernetes] {len(core)} core objects valid for Kubernetes {version} (strict)")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Meta(_Strict):
    name: str
    labels: dict[str, str]


class _Ref(_Strict):
    name: str


class _RedisListMetadata(_Strict):  # keda.sh/docs/2.16/scalers/redis-lists
    address: str
    usernameFromEnv: str | None = None
    listName: str
    listLength: str
    databaseIndex: str | None = None
    activationListLength: str | None = None
    enableTLS: Literal["true", "false"] | None = None


class _Trigger(_Strict):
    type: Literal["redis"]
    metadata: _RedisListMetadata
    authenticationRef: _Ref


class _ScaledObjectSpec(_Strict):
    scaleTargetRef: _Ref
    minReplicaCount: int
    maxReplicaCount: int
    pollingInterval: int
    cooldownPeriod: int
    triggers: list[_Trigger]


class _ScaledObject(_Strict):
    apiVersion: Literal["keda.sh/v1alpha1"]
    kind: Literal["ScaledObject"]
    metadata: _Meta
    spec: _ScaledObjectSpec


class _SecretTarget(_Strict):
    parameter: Literal["password", "username"]
    name: str
    key: str


class _TriggerAuthentication(_Strict):
    apiVersion: Literal["keda.sh/v1alpha1"]
    kind: Literal["TriggerAuthentication"]
    metadata: _Meta
    spec: dict[Literal["secretTargetRef"], list[_SecretTarget]]


class _SecretKey(_Strict):
    name: str
    key: str


class _Authorization(_Strict):
    credentials: _SecretKey


class _Endpoint(_Strict):
    port: str
    path: str
    interval: str
    authorization: _Authorization | None = None


class _Selector(_Strict):
    matchLabels: dict[str, str]


class _ServiceMonitorSpec(_Strict):
    selector: _Selector
    endpoints: list[_Endpoint]


class _ServiceMonitor(_Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["ServiceMonitor"]
    metadata: _Meta
    spec: _ServiceMonitorSpec


def test_every_ai_service_scales_on_each_of_its_queues_with_keda() -> None:
    from mediafleet.common.queues import family_queues
    from mediafleet.common.registry import capabilities

    deployments, auths = by_kind("Deployment"), by_kind("TriggerAuthentication")
    assert list(auths) == ["mediafleet-redis"]
    auth = _TriggerAuthentication.model_validate(auths["mediafleet-redis"])
    assert [(t.name, t.key) for t in auth.spec["secretTargetRef"]] == [
        ("mediafleet-secrets", "REDIS_WORKER_PASSWORD")
    ]
    scaled = {name: _ScaledObject.model_validate(o) for name, o in by_kind("ScaledObject").items()}
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    in_compose = {n for n, s in compose.items() if "ai" in (s.get("profiles") or [])}
    ai = {name.replace("_", "-"): cap for name, cap in capabilities().items() if name in in_compose}
    assert set(scaled) == set(ai)
    for name, obj in scaled.items():
        assert obj.spec.scaleTargetRef.name in deployments
        lists = [t.metadata.listName for t in obj.spec.triggers]
        # RQ keeps a queue's waiting job ids in the Redis list rq:queue:<name>
        assert lists == [f"rq:queue:{q}" for q in family_queues(ai[name])], name
        assert all(t.authenticationRef.name == "mediafleet-redis" for t in obj.spec.triggers)
        assert all(
            t.metadata.address == "redis:6379" and int(t.metadata.listLength) >= 1 for t in obj.spec.triggers
        )
        assert 0 <= obj.spec.minReplicaCount <= obj.spec.maxReplicaCount
        # KEDA reads the queues as the worker's Redis user, named in the target's environment
        env = {e["name"]: e for e in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert {t.metadata.usernameFromEnv for t in obj.spec.triggers} == {"REDIS_USERNAME"}
        assert env["REDIS_USERNAME"]["value"] == "worker"
        assert env["MEDIAFLEET_REDIS_URL"]["value"] == "redis://worker:$(REDIS_WORKER_PASSWORD)@redis:6379/0"
    # the LLM also answers the gateway's chat over HTTP: never scaled to zero
    assert scaled["llm-service"].spec.minReplicaCount == 1
    print(
        f"\n[kubernetes] {len(scaled)} ScaledObjects, {sum(len(o.spec.triggers) for o in scaled.values())} queue triggers"
    )


def test_service_monitors_select_a_service_with_an_http_port() -> None:
    services = by_kind("Service")
    monitors = {n: _ServiceMonitor.model_validate(o) for n, o in by_kind("ServiceMonitor", MONITORS).items()}
    assert {"gateway", "job-manager", "vector-db"} <= set(monitors)
    for name, monitor in monitors.items():
        target = services[name]
        assert monitor.spec.selector.matchLabels.items() <= target["spec"]["selector"].items()
        assert [e.port for e in monitor.spec.endpoints] == ["http"]
        assert "http" in {p["name"] for p in target["spec"]["ports"]}
    gateway = monitors["gateway"].spec.endpoints[0].authorization
    assert gateway is not None and gateway.credentials.key == "GATEWAY_INTERNALS_TOKEN"


def _mebibytes(value: str) -> int:
    """compose ``512m``/``1g`` or Kubernetes ``512Mi``/``1Gi`` -> MiB."""
    m = re.fullmatch(r"(\d+)(m|g|Mi|Gi)", value)
    assert m, value
    return int(m.group(1)) * (1024 if m.group(2) in ("g", "Gi") else 1)


def _millicores(value: str | float) -> int:
    text = str(value)
    return int(text[:-1]) if text.endswith("m") else round(float(text) * 1000)


def _compose_default(value: object) -> str:
    m = re.fullmatch(r"\$\{[A-Z0-9_]+:-([^}]*)\}", str(value))
    return m.group(1) if m else str(value)


def test_limits_equal_compose_and_every_container_has_probes() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workloads = {**by_kind("Deployment"), **by_kind("StatefulSet")}
    long_running = [
        n for n, s in compose.items() if not {"tools", "monitoring", "grafana"} & set(s.get("profiles") or [])
    ]
    assert {n.replace("_", "-") for n in long_running} == set(workloads)
    total = 0
    for name in long_running:
        container = workloads[name.replace("_", "-")]["spec"]["template"]["spec"]["containers"][0]
        limits = container["resources"]["limits"]
        assert _mebibytes(limits["memory"]) == _mebibytes(_compose_default(compose[name]["mem_limit"])), name
        assert _millicores(limits["cpu"]) == _millicores(_compose_default(compose[name]["cpus"])), name
        total += _mebibytes(limits["memory"])
        assert "readinessProbe" in container, name
        if container["readinessProbe"].get("httpGet", {}).get("path") == "/readyz":
            port = container["readinessProbe"]["httpGet"]["port"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}
            assert {p["containerPort"] for p in container["ports"]} == {port}
    # the same 7.00 GiB as the compose fleet (make limits)
    assert total == 7 * 1024, total
    print(f"\n[kubernetes] memory limits add up to {total} MiB, as compose's")


def test_workers_fetch_media_by_signed_url_and_every_secret_key_is_documented() -> None:
    readme = (KUBE / "README.md").read_text()
    documented = set(re.findall(r"^\s*--from-literal=([A-Z_]+)=", readme, re.M))
    used = set()
    for obj in BASE:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "mediafleet-secrets"
                    used.add(ref["key"])
    assert used and used <= documented, sorted(used - documented)
    workers = {n: o for n, o in by_kind("Deployment").items() if n in by_kind("ScaledObject")}
    for name, deployment in workers.items():
        pod = deployment["spec"]["template"]["spec"]
        assert [v["name"] for v in pod["volumes"]] == ["models"], name  # no media volume
    signer = {
        e["name"]: e.get("value")
        for e in by_kind("Deployment")["job-manager"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert signer["MEDIAFLEET_MEDIA_URL_BASE"] == "http://gateway:8000"
    assert signer["MEDIAFLEET_MEDIA_URL_SECRET"] == "$(MEDIA_URL_SECRET)"


def test_the_gpu_component_scales_gpu_workers_from_zero_on_their_gpu_queues() -> None:
    """components/gpu: a GPU worker per service with a :gpu image, valid for Kubernetes, one
    nvidia.com/gpu each, scaled by KEDA from zero on exactly its capability's GPU queues, and a
    job-manager patch naming those capabilities as GPU-on-demand."""
    from mediafleet.common.queues import gpu_queues
    from mediafleet.common.registry import capabilities

    folder = KUBE / "components" / "gpu"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    objs = [o for o in yaml.safe_load_all((folder / "gpu-workers.yaml").read_text()) if o]
    deployments, scaled = by_kind("Deployment", objs), by_kind("ScaledObject", objs)
    with_gpu_image = {p.parent.name for p in ROOT.glob("services/*/Dockerfile.gpu")}
    assert set(deployments) == {f"{n.replace('_', '-')}-gpu" for n in with_gpu_image}
    caps = capabilities()
    for name in with_gpu_image:
        dns = f"{name.replace('_', '-')}-gpu"
        for version in VERSIONS:
            kubernetes_validate.validate(deployments[dns], version, strict=True)
        container = deployments[dns]["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == f"mediafleet/{name}:gpu"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MEDIAFLEET_WORKER_DEVICE"] == "cuda" and env["REDIS_USERNAME"] == "worker"
        obj = _ScaledObject.model_validate(scaled[dns])
        assert obj.spec.minReplicaCount == 0 and obj.spec.scaleTargetRef.name == dns
        assert [t.metadata.listName for t in obj.spec.triggers] == [
            f"rq:queue:{q}" for q in gpu_queues(caps[name])
        ]
    patch = yaml.safe_load((folder / kustomization["patches"][0]["path"]).read_text())
    assert patch["metadata"]["name"] == "job-manager" and "job-manager" in by_kind("Deployment")
    env = {e["name"]: e["value"] for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert set(json.loads(env["JOB_MANAGER_GPU_ON_DEMAND"])) == with_gpu_image
    assert float(env["JOB_MANAGER_GPU_WAIT_S"]) > 0
