"""Render the fleet's Kustomize base for Kubernetes from docker-compose.yml (issue 24.5).

    python deploy/kubernetes/render.py           # writes deploy/kubernetes/base/*.yaml
    python deploy/kubernetes/render.py --check   # exit 1 when the committed files differ

The compose file stays the one description of the fleet: images, commands, environment,
memory and CPU limits and health probes come from it (a service's ``${VAR:-default}`` becomes
its default; ``${SECRET:?...}`` a key of the Secret ``mediafleet-secrets``), so the two cannot
drift (tests/test_kubernetes.py renders and compares). What Kubernetes does differently:

- Redis is the fleet's own image (services/redis): one ACL user per role, its password a key
  of the Secret; each service's ``MEDIAFLEET_REDIS_URL`` names its user as in compose, and
  KEDA reads the queues as the ``worker`` user (``TriggerAuthentication``). In the cluster
  every connection is plain on 6379; the TLS port (6380) is for worker hosts outside it.
- AI workers mount no media volume: job_manager signs a media URL for each task
  (``MEDIAFLEET_MEDIA_URL_BASE``/``_SECRET``) and the worker fetches the file from the gateway,
  as a remote worker does (tests/test_remote_worker.py), so workers scale over nodes.
- Each AI service scales on the length of its RQ queues through a KEDA ``ScaledObject``
  (Redis Lists scaler, one trigger per queue of the family, ``listLength`` per service).
- ``components/gpu`` adds a GPU worker per service with a ``:gpu`` image (``<service>-gpu``, one
  ``nvidia.com/gpu``), scaled by KEDA from zero on the capability's GPU queues, and makes
  job-manager send ``auto`` tasks there first (they run on CPU when no GPU pod took them in
  ``GPU_WAIT_S_ON_DEMAND``).
- The monitoring profile is not rendered; ``components/servicemonitor`` adds a
  ``ServiceMonitor`` per service for a cluster that runs the Prometheus Operator.

Kubernetes' ``$(VAR)`` expansion builds URLs from Secret values (the variable is defined before
the one using it). No Helm binary is reachable from this project's package sources, hence
Kustomize (``kubectl apply -k``); see deploy/kubernetes/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = Path(__file__).resolve().parent / "base"
SECRET = "mediafleet-secrets"
LABEL = "app.kubernetes.io/name"
PART_OF = {"app.kubernetes.io/part-of": "mediafleet"}

#: compose interpolation variables that are secrets (-> keys of mediafleet-secrets)
SECRET_KEYS = ("POSTGRES_PASSWORD", "GATEWAY_SECRET_KEY", "INTERNAL_TOKEN", "GATEWAY_ADMIN_PASSWORD",
               "GATEWAY_INTERNALS_TOKEN", "REDIS_GATEWAY_PASSWORD", "REDIS_JOB_MANAGER_PASSWORD",
               "REDIS_WORKER_PASSWORD", "REDIS_EXPORTER_PASSWORD")  # fmt: skip
#: keys only Kubernetes needs (compose's workers share the media volume)
EXTRA_SECRET_KEYS = ("MEDIA_URL_SECRET",)
#: what the AI services' ScaledObjects aim at: tasks waiting per replica
LIST_LENGTH = {"whisper_transcriber": 2, "llm_service": 4}
#: AI services that also answer HTTP for the gateway (chat, sync routes): never scaled to zero
ALWAYS_ON = {"llm_service"}
#: what readiness and a task's error name when weights are missing
PULL = "make models MODELS={name}, then copy var/models into the models volume (deploy/kubernetes/README.md)"
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?([-?]))?([^}]*)\}")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))


def capabilities() -> dict[str, dict[str, Any]]:
    """AI service -> its HTTP port and RQ queue name (from each capability's contract)."""
    from mediafleet.common.queues import family_queues
    from mediafleet.common.registry import capabilities as installed

    return {
        name: {"port": cap.http_port, "queues": family_queues(cap)}
        for name, cap in installed().items()
        if cap.http_port
    }


def expand(value: object) -> tuple[str, list[str]]:
    """A compose value with its defaults filled in, Secret variables as ``$(NAME)``, and the
    Secret keys it uses."""
    used: list[str] = []

    def one(m: re.Match[str]) -> str:
        name, op, rest = m.group(1), m.group(2), m.group(3)
        if name in SECRET_KEYS:
            used.append(name)
            return f"$({name})"
        if op == "?":
            raise ValueError(f"${{{name}:?...}} is required in compose but not a known secret")
        return rest if op == "-" else ""

    return _VAR.sub(one, str(value)), used


def quantity_memory(value: object) -> str:
    """compose ``1152m``/``1g`` (MiB, GiB) -> Kubernetes ``1152Mi``/``1Gi``."""
    text, _ = expand(value)
    m = re.fullmatch(r"(\d+)([mg])", text.strip().lower())
    if not m:
        raise ValueError(f"memory limit {text!r}")
    return f"{m.group(1)}{'Mi' if m.group(2) == 'm' else 'Gi'}"


def quantity_cpu(value: object) -> str:
    """compose ``cpus: 2.0``/``0.5`` -> Kubernetes ``2``/``500m``."""
    text, _ = expand(value)
    milli = round(float(text) * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def seconds(value: object) -> int:
    """compose durations ``5m``/``90s`` -> seconds."""
    text, _ = expand(value)
    m = re.fullmatch(r"(\d+)([ms])", text.strip())
    if not m:
        raise ValueError(f"duration {text!r}")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def env_list(environment: dict[str, object], overrides: dict[str, str]) -> list[dict[str, Any]]:
    """Container env: the Secret keys first (so ``$(NAME)`` expands), then the values."""
    values: dict[str, str] = {}
    secrets: list[str] = []
    for name, raw in {**environment, **overrides}.items():
        text, used = expand(raw)
        secrets += used
        values[name] = text
    out: list[dict[str, Any]] = []
    for key in dict.fromkeys(secrets):
        ref = {"name": SECRET, "key": key}
        if key == "GATEWAY_INTERNALS_TOKEN":
            ref["optional"] = True  # empty: the gateway's /metrics answers nobody
        out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    out += [{"name": k, "value": v} for k, v in values.items()]
    return out


def http_probes(port: int, start_s: int) -> dict[str, Any]:
    get = {"httpGet": {"path": "/healthz", "port": port}}
    return {
        "startupProbe": {**get, "periodSeconds": 5, "failureThreshold": max(start_s // 5, 1)},
        "livenessProbe": {**get, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 6},
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": port},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
    }


def image(service: dict[str, Any]) -> str:
    """The service's image as compose names it by default (``${REDIS_IMAGE:-redis:7.2-bookworm}``
    -> ``redis:7.2-bookworm``); an overlay's ``images:`` points it at your registry."""
    return expand(service["image"])[0]


def resources(service: dict[str, Any]) -> dict[str, Any]:
    memory, cpu = quantity_memory(service["mem_limit"]), quantity_cpu(service["cpus"])
    return {"limits": {"memory": memory, "cpu": cpu}, "requests": {"memory": memory, "cpu": "100m"}}


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "labels": {LABEL: name, **PART_OF}, **extra}


def workload(
    kind: str, name: str, container: dict[str, Any], volumes: list[dict[str, Any]] | None = None,
    claims: list[dict[str, Any]] | None = None, grace_s: int = 30, recreate: bool = False,
) -> dict[str, Any]:  # fmt: skip
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {LABEL: name}},
        "template": {
            "metadata": {"labels": {LABEL: name, **PART_OF}},
            "spec": {
                "terminationGracePeriodSeconds": grace_s,
                "containers": [{"name": name, "imagePullPolicy": "IfNotPresent", **container}],
                **({"volumes": volumes} if volumes else {}),
            },
        },
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
        spec["volumeClaimTemplates"] = claims or []
    elif recreate:
        spec["strategy"] = {"type": "Recreate"}  # a ReadWriteOnce claim: one pod at a time
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta(name), "spec": spec}


def service(
    name: str, ports: dict[str, int], kind: str = "ClusterIP", targets: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name),
        "spec": {
            "type": kind,
            "selector": {LABEL: name},
            "ports": [
                {"name": p, "port": port, "targetPort": (targets or {}).get(p, port), "protocol": "TCP"}
                for p, port in ports.items()
            ],
        },
    }


def claim(name: str, size: str, mode: str = "ReadWriteOnce") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": [mode], "resources": {"requests": {"storage": size}}},
    }


def pvc(name: str, size: str, mode: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(name),
        **claim(name, size, mode),
    }


def render() -> dict[str, list[dict[str, Any]]]:
    """File name -> its objects."""
    c = compose()
    services = c["services"]
    caps = capabilities()
    files: dict[str, list[dict[str, Any]]] = {}

    # Redis and PostgreSQL
    r = services["redis"]
    files["redis.yaml"] = [
        workload(
            "StatefulSet", "redis",
            {
                "image": image(r),
                "env": env_list(r["environment"], {}),
                "ports": [{"name": "redis", "containerPort": 6379}, {"name": "redis-tls", "containerPort": 6380}],
                "volumeMounts": [{"name": "redis", "mountPath": "/data"}],
                "readinessProbe": {"exec": {"command": r["healthcheck"]["test"][1:]}, "periodSeconds": 5},
                "resources": resources(r),
            },
            claims=[claim("redis", "1Gi")],
        ),
        service("redis", {"redis": 6379, "redis-tls": 6380}),
    ]  # fmt: skip
    p = services["postgres"]
    files["postgres.yaml"] = [
        workload(
            "StatefulSet", "postgres",
            {
                "image": image(p),
                "env": env_list(p["environment"], {"PGDATA": "/var/lib/postgresql/data/pgdata"}),
                "ports": [{"name": "postgres", "containerPort": 5432}],
                "volumeMounts": [{"name": "postgres", "mountPath": "/var/lib/postgresql/data"}],
                "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "mediafleet", "-d", "mediafleet", "-h", "127.0.0.1"]},
                                   "periodSeconds": 5},
                "resources": resources(p),
            },
            claims=[claim("postgres", "10Gi")],
        ),
        service("postgres", {"postgres": 5432}),
    ]  # fmt: skip

    # gateway, job_manager, vector_db
    signing = {
        "MEDIAFLEET_MEDIA_URL_BASE": "http://gateway:8000",
        "MEDIAFLEET_MEDIA_URL_SECRET": "$(MEDIA_URL_SECRET)",
    }
    url_secret = [
        {
            "name": "MEDIA_URL_SECRET",
            "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "MEDIA_URL_SECRET"}},
        }
    ]
    g = services["gateway"]
    files["gateway.yaml"] = [
        pvc("media", "50Gi", "ReadWriteOnce"),
        workload(
            "Deployment", "gateway",
            {
                "image": image(g),
                "env": url_secret + env_list(g["environment"], signing),
                "ports": [{"name": "http", "containerPort": 8000}],
                "volumeMounts": [{"name": "media", "mountPath": "/data/media"}],
                **http_probes(8000, 180),
                "resources": resources(g),
            },
            volumes=[{"name": "media", "persistentVolumeClaim": {"claimName": "media"}}],
            recreate=True,
        ),
        service("gateway", {"http": 8000}),
    ]  # fmt: skip
    j = services["job_manager"]
    files["job-manager.yaml"] = [
        workload(
            "Deployment", "job-manager",
            {
                "image": image(j),
                "env": url_secret + env_list(j["environment"], signing),
                "ports": [{"name": "http", "containerPort": 8102}],
                **http_probes(8102, 180),
                "resources": resources(j),
            },
        ),
        service("job-manager", {"http": 8102}),
    ]  # fmt: skip
    v = services["vector_db"]
    files["vector-db.yaml"] = [
        workload(
            "StatefulSet", "vector-db",
            {
                "image": image(v),
                "env": env_list(v["environment"], {}),
                "ports": [{"name": "http", "containerPort": 8103}],
                "volumeMounts": [{"name": "vectors", "mountPath": "/data/vectors"}],
                **http_probes(8103, 180),
                "resources": resources(v),
            },
            claims=[claim("vectors", "10Gi")],
        ),
        # the fleet calls it vector_db (MEDIAFLEET_VECTOR_DB_URL); "_" is not allowed in a
        # Service's name, so the URL is rewritten below
        service("vector-db", {"http": 8103}),
    ]  # fmt: skip
    n = services["nginx"]
    files["nginx.yaml"] = [
        workload(
            "Deployment", "nginx",
            {
                "image": image(n),
                "env": env_list(n["environment"], {}),
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "https", "containerPort": 8443}],
                "volumeMounts": [{"name": "certs", "mountPath": "/etc/nginx/certs"},
                                 {"name": "acme", "mountPath": "/var/www/acme"}],
                "readinessProbe": {"httpGet": {"path": "/nginx-health", "port": 8443, "scheme": "HTTPS"}, "periodSeconds": 5},
                "resources": resources(n),
            },
            volumes=[{"name": "certs", "emptyDir": {}}, {"name": "acme", "emptyDir": {}}],
        ),
        service("nginx", {"http": 80, "https": 443}, "LoadBalancer", {"http": 8080, "https": 8443}),
    ]  # fmt: skip

    # every AI service: a worker Deployment scaled by KEDA on its queues
    ai_names = [name for name, s in services.items() if "ai" in (s.get("profiles") or [])]
    grace = seconds(services[ai_names[0]]["stop_grace_period"])  # a worker finishes its task
    for name in ai_names:
        s, cap = services[name], caps[name]
        dns = name.replace("_", "-")
        env = {k: val for k, val in s["environment"].items() if k != "MEDIAFLEET_MEDIA_DIR"}
        files[f"{dns}.yaml"] = [
            ai_worker(dns, image(s), env, resources(s), cap["port"], grace),
            service(dns, {"http": cap["port"]}),
            scaled_object(dns, cap["queues"], 1 if name in ALWAYS_ON else 0, LIST_LENGTH.get(name, 5), 4),
        ]

    # fleet-wide: the models claim the workers read, KEDA's way into Redis, the names used above
    files["shared.yaml"] = [
        pvc("models", "20Gi", "ReadOnlyMany"),
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "TriggerAuthentication",
            "metadata": meta("mediafleet-redis"),
            "spec": {
                "secretTargetRef": [{"parameter": "password", "name": SECRET, "key": "REDIS_WORKER_PASSWORD"}]
            },
        },
    ]
    for objects in files.values():
        rename_hosts(objects)
    return files


def rename_hosts(objects: list[dict[str, Any]]) -> None:
    """Service names may not hold "_": the fleet's URLs name vector-db and llm-service instead."""
    for obj in objects:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for item in container.get("env", []):
                if isinstance(item.get("value"), str):
                    item["value"] = (
                        item["value"]
                        .replace("http://vector_db:", "http://vector-db:")
                        .replace("http://llm_service:", "http://llm-service:")
                    )


MODELS_VOLUME = [{"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}}]


def ai_worker(
    dns: str, image_name: str, env: dict[str, object], res: dict[str, Any], port: int, grace_s: int
) -> dict[str, Any]:
    """An AI service's worker Deployment: the models claim read-only, no media volume."""
    return workload(
        "Deployment", dns,
        {
            "image": image_name,
            "env": env_list(env, {"MEDIAFLEET_PULL_COMMAND": PULL, "REDIS_USERNAME": "worker"}),
            "ports": [{"name": "http", "containerPort": port}],
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
            **http_probes(port, 300),
            "resources": res,
        },
        volumes=MODELS_VOLUME, grace_s=grace_s,
    )  # fmt: skip


def scaled_object(
    dns: str, queues: list[str], min_replicas: int, list_length: int, max_replicas: int
) -> dict[str, Any]:
    """KEDA's Redis Lists scaler on each RQ queue list (``rq:queue:<name>``) of the worker ``dns``."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": meta(dns),
        "spec": {
            "scaleTargetRef": {"name": dns},
            "minReplicaCount": min_replicas,
            "maxReplicaCount": max_replicas,
            "pollingInterval": 10,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "redis",
                    "metadata": {"address": "redis:6379", "usernameFromEnv": "REDIS_USERNAME",
                                 "listName": f"rq:queue:{queue}",
                                 "listLength": str(list_length), "databaseIndex": "0"},
                    "authenticationRef": {"name": "mediafleet-redis"},
                }
                for queue in queues
            ],
        },
    }  # fmt: skip


#: how long a task waits on its GPU queue while KEDA starts a GPU pod from zero and it loads its
#: models, before it runs on CPU (components/gpu)
GPU_WAIT_S_ON_DEMAND = 180


def gpu_component() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``components/gpu``: per service with a ``:gpu`` image (docker-compose.gpu.yml) a GPU worker
    Deployment (``<service>-gpu``, one ``nvidia.com/gpu``) that KEDA scales from zero on the
    capability's GPU queues; and a patch that makes job-manager send ``auto`` tasks of those
    capabilities to the GPU queues even while no GPU pod runs (``JOB_MANAGER_GPU_ON_DEMAND``),
    moving them to CPU after ``GPU_WAIT_S_ON_DEMAND``."""
    from mediafleet.common.queues import gpu_queues
    from mediafleet.common.registry import capabilities as installed

    services = compose()["services"]
    overlay = yaml.safe_load((ROOT / "docker-compose.gpu.yml").read_text())["services"]
    caps = installed()
    objects: list[dict[str, Any]] = []
    for name, gpu in overlay.items():
        s, cap = services[name], caps[name]
        dns = f"{name.replace('_', '-')}-gpu"
        env = {k: v for k, v in s["environment"].items() if k != "MEDIAFLEET_MEDIA_DIR"}
        env.update(gpu["environment"])
        res = resources(s)
        res["limits"]["nvidia.com/gpu"] = "1"
        objects += [
            ai_worker(dns, image(gpu), env, res, cap.http_port, seconds(s["stop_grace_period"])),
            scaled_object(dns, gpu_queues(cap), 0, LIST_LENGTH.get(name, 5), 2),
        ]
    rename_hosts(objects)
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "job-manager"},
        "spec": {"template": {"spec": {"containers": [{
            "name": "job-manager",
            "env": [
                {"name": "JOB_MANAGER_GPU_ON_DEMAND", "value": json.dumps(sorted(overlay))},
                {"name": "JOB_MANAGER_GPU_WAIT_S", "value": str(GPU_WAIT_S_ON_DEMAND)},
            ],
        }]}}},
    }  # fmt: skip
    return objects, patch


def servicemonitors() -> list[dict[str, Any]]:
    """The ``components/servicemonitor`` objects: one per service with /metrics."""
    services = compose()["services"]
    ai = [n for n, s in services.items() if "ai" in (s.get("profiles") or [])]
    names = ["gateway", "job-manager", "vector-db"] + [n.replace("_", "-") for n in ai]
    out = []
    for name in names:
        endpoint: dict[str, Any] = {"port": "http", "path": "/metrics", "interval": "15s"}
        if name == "gateway":  # its /metrics answers only GATEWAY_INTERNALS_TOKEN
            endpoint["authorization"] = {"credentials": {"name": SECRET, "key": "GATEWAY_INTERNALS_TOKEN"}}
        out.append({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta(name),
            "spec": {"selector": {"matchLabels": {LABEL: name}}, "endpoints": [endpoint]},
        })  # fmt: skip
    return out


HEADER = "# Rendered by deploy/kubernetes/render.py from docker-compose.yml: edit those, not this file.\n"


def outputs() -> dict[Path, str]:
    files = render()
    out = {
        BASE / name: HEADER + yaml.safe_dump_all(objs, sort_keys=False, width=120)
        for name, objs in files.items()
    }
    out[BASE / "kustomization.yaml"] = HEADER + yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": sorted(files),
        },
        sort_keys=False,
    )
    component = BASE.parent / "components" / "servicemonitor"
    out[component / "servicemonitors.yaml"] = HEADER + yaml.safe_dump_all(
        servicemonitors(), sort_keys=False, width=120
    )
    out[component / "kustomization.yaml"] = HEADER + yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": ["servicemonitors.yaml"],
        },
        sort_keys=False,
    )
    gpu_objects, patch = gpu_component()
    gpu = BASE.parent / "components" / "gpu"
    out[gpu / "gpu-workers.yaml"] = HEADER + yaml.safe_dump_all(gpu_objects, sort_keys=False, width=120)
    out[gpu / "job-manager-gpu.yaml"] = HEADER + yaml.safe_dump(patch, sort_keys=False, width=120)
    out[gpu / "kustomization.yaml"] = HEADER + yaml.safe_dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1alpha1",
            "kind": "Component",
            "resources": ["gpu-workers.yaml"],
            "patches": [{"path": "job-manager-gpu.yaml"}],
        },
        sort_keys=False,
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed files differ")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(
            f"render.py: out of date (run python deploy/kubernetes/render.py): {', '.join(stale)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
