"""Keeping the cyclic garbage collector off the objects that live as long as the process."""

import gc


def freeze_startup_objects() -> None:
    """Move everything allocated so far (modules, models, schemas, routes, pools) out of the
    collector's reach, once per process. Full collections otherwise walk those 250,000 objects
    again and again: that was 40% of the API's CPU on batch ingest (bench/ingest.py). Garbage
    is collected first so that none of it is kept for good."""
    if gc.get_freeze_count():
        return
    gc.collect()
    gc.freeze()
