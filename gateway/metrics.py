"""The gateway's `/metrics`, whichever worker process answers it.

Each uvicorn worker (`EVENTHUB_GATEWAY_WORKERS`) is a process with counters of its
own, and the one that answers a scrape must report them all. `shared_by_workers`
gives the workers a directory made anew for each start of the gateway, where
prometheus_client's multiprocess mode keeps every worker's values in memory-mapped
files, and `exposition` sums them (process_* metrics are then left out: they are
per process). A single worker keeps its values in memory, as the services do.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_VAR = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def shared_by_workers(workers: int) -> Iterator[None]:
    """Worker processes started inside the block share their metrics. (Workers are
    spawned, so each reads the variable when it first imports prometheus_client.)"""
    if workers <= 1:
        yield
        return
    directory = tempfile.mkdtemp(prefix="eventhub-gateway-metrics-")
    os.environ[MULTIPROCESS_DIR_VAR] = directory
    try:
        yield
    finally:
        os.environ.pop(MULTIPROCESS_DIR_VAR, None)
        shutil.rmtree(directory, ignore_errors=True)


def exposition() -> bytes:
    """Every worker's metrics as Prometheus text."""
    if MULTIPROCESS_DIR_VAR not in os.environ:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry)
