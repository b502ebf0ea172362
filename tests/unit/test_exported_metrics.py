"""The list of metrics the dashboards, alerts and autoscaler may query
(`scripts/exported_metrics.py`, which `make deploy-check` holds them to) is what the
code registers: a renamed metric or label fails here, not on an operator's dashboard."""

import importlib

from prometheus_client import REGISTRY

from scripts.exported_metrics import METRICS

DEFINING_MODULES = (
    "common.metrics",
    "common.outbox",
    "common.consumer",
    "common.event_cache",
    "gateway.middleware",
    "gateway.ratelimit",
)
_NOT_OURS = ("process_", "up")  # prometheus_client's process collector; Prometheus itself


def registered() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, label names) of every metric the modules define (read from the
    metric objects: a labelled metric has no samples until first used)."""
    for module in DEFINING_MODULES:
        importlib.import_module(module)
    found = {}
    for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001
        kind, name = getattr(collector, "_type", None), getattr(collector, "_name", "")
        if kind in ("counter", "gauge", "histogram"):
            name += "_total" if kind == "counter" else ""
            found[name] = (kind, tuple(sorted(collector._labelnames)))  # noqa: SLF001
    return found


def test_every_listed_metric_is_registered_with_its_labels() -> None:
    code = registered()
    for name, (kind, labels) in METRICS.items():
        if name.startswith(_NOT_OURS):
            continue
        assert name in code, f"{name} is listed but not registered"
        assert code[name] == (kind, tuple(sorted(labels))), name


def test_every_registered_eventhub_metric_is_listed() -> None:
    assert {name for name in registered() if name.startswith("eventhub_")} <= METRICS.keys()
