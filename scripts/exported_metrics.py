"""The Prometheus metrics EventHub's processes export: the only names the dashboards, the
alert rules and the autoscaler may query (`scripts/check_observability.py` holds them to it).

Kept by hand, next to the code's: `tests/unit/test_exported_metrics.py` fails when the
two differ (a name, a type or a label).
"""

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

# name -> (type, label names). Every series also has the target labels below.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    # gateway
    "eventhub_http_requests_total": (COUNTER, ("method", "route", "status")),
    "eventhub_http_request_duration_seconds": (HISTOGRAM, ("method", "route")),
    "eventhub_ratelimit_fallback_total": (COUNTER, ()),
    # every gRPC service; `code` is the status name (OK, NOT_FOUND, INTERNAL, ...)
    "eventhub_grpc_server_requests_total": (COUNTER, ("method", "code")),
    "eventhub_grpc_server_request_duration_seconds": (HISTOGRAM, ("method",)),
    # every process with a database; `pool` is sqlalchemy, writes (events) or reads (history)
    "eventhub_db_pool_connections_in_use": (GAUGE, ("pool",)),
    "eventhub_db_pool_size": (GAUGE, ("pool",)),
    "eventhub_db_pool_max_connections": (GAUGE, ("pool",)),
    "eventhub_db_pool_waiting": (GAUGE, ("pool",)),
    "eventhub_db_pool_waits_total": (COUNTER, ("pool",)),
    # the event service's outbox: one table, so every replica reports the same backlog
    "eventhub_outbox_pending_messages": (GAUGE, ()),
    "eventhub_outbox_oldest_pending_age_seconds": (GAUGE, ()),
    "eventhub_outbox_published_total": (COUNTER, ()),
    "eventhub_outbox_publish_failures_total": (COUNTER, ()),
    # durable JetStream consumers, `consumer` history or sharing_audit; replicas share one,
    # so each reports the same backlog (not delivered yet; delivered, not acknowledged)
    "eventhub_consumer_pending_messages": (GAUGE, ("consumer",)),
    "eventhub_consumer_ack_pending_messages": (GAUGE, ("consumer",)),
    "eventhub_consumer_processed_total": (COUNTER, ("consumer",)),
    "eventhub_consumer_retries_total": (COUNTER, ("consumer",)),
    "eventhub_consumer_dead_letters_total": (COUNTER, ("consumer",)),
    # read caches
    "eventhub_cache_requests_total": (COUNTER, ("cache", "result")),
    # prometheus_client's process collector: every service, and a one-worker gateway
    "process_cpu_seconds_total": (COUNTER, ()),
    "process_resident_memory_bytes": (GAUGE, ()),
    "process_open_fds": (GAUGE, ()),
    "process_start_time_seconds": (GAUGE, ()),
    # made by Prometheus for every target it scrapes
    "up": (GAUGE, ()),
}

# Added by the scrape configurations (deploy/observability/prometheus*.yml).
TARGET_LABELS = ("job", "instance", "namespace", "pod")

# The Prometheus job of each process: Compose service and Kubernetes app name alike.
JOBS = ("gateway", "auth-service", "event-service", "sharing-service", "history-service")


def series() -> dict[str, set[str]]:
    """Every series name a query may use, with the labels it may match or group by."""
    names: dict[str, set[str]] = {}
    for name, (kind, labels) in METRICS.items():
        own = {*labels, *TARGET_LABELS}
        if kind == HISTOGRAM:
            names[f"{name}_bucket"] = own | {"le"}
            names[f"{name}_sum"] = own
            names[f"{name}_count"] = own
        else:
            names[name] = own
    return names


if __name__ == "__main__":
    print("\n".join(sorted(series())))
