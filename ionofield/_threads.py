"""Torch threads: the process-wide setting changed for a block, and a dask worker's share."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` torch intra-op threads (None: leave as is).

    The setting is process-wide: other threads using torch meanwhile see it too.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def worker_threads() -> int | None:
    """The thread count of the ``dask.distributed`` worker running the calling task.

    A worker process is given as many threads as it may keep busy
    (``LocalCluster(threads_per_worker=...)``, ``dask worker --nthreads``); torch's
    own default there is every core of the machine, or one when the worker's nanny
    sets ``OMP_NUM_THREADS=1``, neither of which is the worker's share. Outside a
    worker (the threaded or synchronous scheduler, plain calls) there is no such
    share.

    Returns
    -------
    int or None
        The worker's ``nthreads``, or None when the caller runs on no worker.
    """
    distributed = sys.modules.get("distributed")  # never imported for this alone
    if distributed is None:
        return None
    try:
        return int(distributed.get_worker().state.nthreads)
    except ValueError:  # get_worker's answer outside a worker's task
        return None
