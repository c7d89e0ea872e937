"""PutRecords batching and retry timing (pure).

A batch holds at most 500 records and 5 MiB, counting each record's data plus its partition key, as Kinesis
does; one record may not exceed 1 MiB. Batches are filled greedily in publish order, so N small records take
exactly ceil(N / 500) calls.
"""

from __future__ import annotations

import random

MAX_RECORDS = 500
MAX_BATCH_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024
BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 5.0


def next_batch(sizes: list[int], start: int) -> int:
    """End (exclusive) of the batch that starts at `start`."""
    total, end = 0, start
    while end < len(sizes) and end - start < MAX_RECORDS:
        if sizes[end] > MAX_RECORD_BYTES:
            raise ValueError(f"record {end} is {sizes[end]} bytes; Kinesis takes at most {MAX_RECORD_BYTES}")
        if total + sizes[end] > MAX_BATCH_BYTES:
            break
        total += sizes[end]
        end += 1
    return end


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter before retry number `attempt` (1-based)."""
    return rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0**attempt))
