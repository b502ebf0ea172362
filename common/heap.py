"""Keeping Python's cyclic garbage collector off the objects every process builds at
startup (modules, the app, its routes and models, clients): once frozen they are
never scanned again, so an occasional full collection takes microseconds instead
of pausing every request in flight for tens of milliseconds (the p99 of a cached
read under load)."""

import gc


def freeze_startup_heap() -> None:
    """Call once the process is set up, before it serves."""
    gc.collect()
    gc.freeze()
