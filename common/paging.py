"""Pages are cut by size as well as by count: a page of 200 events with 10,000-character
descriptions, or a changelog page of 1,000 such changes, would otherwise take tens of
megabytes, past the gRPC message limit (`common.grpc_client.MAX_MESSAGE_BYTES`) and
more than a client should have to take at once. A cut page ends early with a cursor
to the rest, as any page does."""

from collections.abc import Iterable

PAGE_BYTES = 4 * 1024 * 1024


def items_within(sizes: Iterable[int], budget: int = PAGE_BYTES) -> int:
    """How many leading items of these sizes fit in `budget` bytes; at least one, so
    that every page makes progress."""
    count = total = 0
    for size in sizes:
        total += size
        if count and total > budget:
            break
        count += 1
    return count
