"""Data-parallel fits with :mod:`torch.distributed`: the ranks of a fit and what they share.

:func:`ionofield.fit` called inside a process group (``torch.distributed.init_process_group``,
e.g. in each process of ``torchrun --nproc-per-node N``) trains data-parallel. Every rank
draws the same global batch from the same seeded generator and takes its share
(:meth:`World.take`); the per-rank loss terms are weighted so that their sum over the ranks
is the single-process loss of the global batch, and the gradients are summed over the
ranks (:meth:`World.sum_gradients`), so every rank applies the same update, the one a
single process would apply to the global batch.

This module holds the pieces that know about ranks: :class:`World` (rank, size, the
collectives the fit needs, each a no-op in a single process), the device of each rank
(:meth:`World.device`), the check that all ranks fit the same thing
(:meth:`World.check_same`), the process group of a ``torchrun``-launched command line
(:func:`process_group`) and the launcher behind ``ionofield fit --nproc N`` (:func:`launch`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ionofield._device import resolve_device
from ionofield.errors import ConfigError

#: Environment variable that ``torchrun`` sets in every process it starts.
LAUNCHED_BY = "LOCAL_RANK"


@dataclass(frozen=True)
class World:
    """The ranks of a fit: this process's rank, their number, the process group's backend.

    A single process is ``World()`` (rank 0 of 1): then every collective returns its
    input and :meth:`take` takes everything in its order, so a single-process fit
    computes exactly what it did before ranks existed.

    Parameters
    ----------
    rank
        This process's rank, from 0.
    size
        Number of ranks (the world size).
    local_rank
        Rank on this machine (picks the GPU).
    backend
        The process group's backend (``"gloo"``, ``"nccl"``), None for one process.

    Examples
    --------
    >>> world = World(rank=1, size=3)
    >>> world.take(np.array([5, 1, 4, 1, 3, 9, 2]))  # positions by key, 2nd of 3 shares
    array([6, 4])
    >>> World().take(np.arange(4))
    slice(None, None, None)
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @classmethod
    def current(cls) -> World:
        """The world of the process group this process belongs to (one process if none).

        Raises
        ------
        ConfigError
            ``torchrun`` started several processes (``WORLD_SIZE`` > 1) but none
            initialised a process group: each would fit alone and write the same files.
        """
        if dist.is_available() and dist.is_initialized():
            rank = dist.get_rank()
            local = os.environ.get(LAUNCHED_BY, os.environ.get("SLURM_LOCALID", rank))
            return cls(rank, dist.get_world_size(), int(local), str(dist.get_backend()))
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > 1:
            raise ConfigError(
                f"fit: this process is one of WORLD_SIZE = {launched} started by torchrun, but "
                "no torch.distributed process group is initialised, so each would fit alone; "
                "call torch.distributed.init_process_group() before ionofield.fit (or run "
                "`ionofield fit`, which does), or start a single process"
            )
        return cls()

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that validates, decides and writes files."""
        return self.rank == 0

    def device(self, device: str | torch.device | None) -> torch.device:
        """The torch device this rank fits on.

        With several ranks, ``"auto"`` and ``"cuda"`` (no index) mean ``cuda:LOCAL_RANK``
        when torch sees GPUs, one GPU per rank; an explicit ``"cuda:k"`` is taken as
        given (for ranks that each see one GPU through ``CUDA_VISIBLE_DEVICES``).

        Parameters
        ----------
        device
            What ``fit(device=...)`` was given.

        Returns
        -------
        torch.device

        Raises
        ------
        ConfigError
            The device is unusable (:func:`~ionofield._device.resolve_device`), this
            machine has fewer GPUs than ranks, or the process group's backend cannot
            reduce tensors on it (NCCL with the CPU).
        """
        name = device.strip().lower() if isinstance(device, str) else device
        if self.size > 1 and name in (None, "auto", "cuda") and torch.cuda.is_available():
            count = torch.cuda.device_count()
            if self.local_rank >= count:
                raise ConfigError(
                    f"fit: local rank {self.local_rank} has no GPU of its own (this machine "
                    f"has {count}); start at most {count} processes per machine "
                    "(torchrun --nproc-per-node), or give device='cpu'"
                )
            found = torch.device("cuda", self.local_rank)
        else:
            found = resolve_device(device)
        if self.backend == "nccl" and found.type != "cuda":
            raise ConfigError(
                f"fit: the process group's backend is NCCL, which reduces CUDA tensors only, "
                f"and this rank fits on {found}; give device='cuda' (or 'auto' on GPUs), or "
                "initialise the process group with backend='gloo' for the CPU"
            )
        if found.type == "cuda":
            torch.cuda.set_device(found)
        return found

    def take(self, key: np.ndarray) -> slice | np.ndarray:
        """Positions of this rank's share of items, given each item's sort key.

        The items are ordered by ``key`` (stably) and cut into ``size`` contiguous
        shares whose lengths differ by at most one, so a rank's share spans few
        distinct keys (times: few LSTM and TEC-path evaluations per rank).

        Parameters
        ----------
        key
            Sort key of every item, shape [N].

        Returns
        -------
        slice or numpy.ndarray
            ``slice(None)`` (everything, in order) in one process; else int64 positions.
        """
        if self.size == 1:
            return slice(None)
        n = len(key)
        order = np.argsort(key, kind="stable")
        return order[n * self.rank // self.size : n * (self.rank + 1) // self.size]

    def _buffer(self, values: Any, dtype: torch.dtype) -> torch.Tensor:
        """``values`` as a tensor where this group's backend reduces."""
        nccl = self.backend == "nccl"
        where = torch.device("cuda", torch.cuda.current_device()) if nccl else "cpu"
        return torch.as_tensor(values, dtype=dtype, device=where)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Elementwise sum of ``values`` over the ranks (float64), the same on every rank."""
        if self.size == 1:
            return values
        buffer = self._buffer(values, torch.float64)
        dist.all_reduce(buffer)
        return buffer.cpu().numpy()

    def from_main(self, value: float) -> float:
        """Rank 0's ``value``, on every rank."""
        if self.size == 1:
            return value
        buffer = self._buffer([value], torch.float64)
        dist.broadcast(buffer, src=0)
        return float(buffer[0])

    def object_from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object), on every rank."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order, on every rank."""
        if self.size == 1:
            return [value]
        found: list[Any] = [None] * self.size
        dist.all_gather_object(found, value)
        return found

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.size > 1:
            dist.barrier()

    def sum_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every parameter's gradient by its sum over the ranks, in one all-reduce.

        A parameter that has no gradient on some ranks (no share of its term there)
        counts as zero on them, and keeps no gradient only when it has none on any
        rank: the optimiser then skips it, as a single process would.
        """
        if self.size == 1:
            return
        params = list(parameters)
        reference = params[0]
        has = [p.grad is not None for p in params]
        flat = torch.cat([
            *((p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params),
            torch.tensor(has, dtype=reference.dtype, device=reference.device),
        ])
        dist.all_reduce(flat)
        counts = flat[-len(params):]
        offset = 0
        for k, param in enumerate(params):
            size = param.numel()
            param.grad = flat[offset : offset + size].view_as(param) if counts[k] > 0 else None
            offset += size

    def check_same(self, what: dict[str, Any]) -> None:
        """Refuse a fit whose ranks were given different inputs.

        Parameters
        ----------
        what
            Plain values each rank must share (options, seed, a fingerprint of the data).

        Raises
        ------
        ConfigError
            Some rank's values differ from rank 0's; the message names the ranks and
            the entries.
        """
        found = self.gather(what)
        problems = []
        for rank, theirs in enumerate(found[1:], start=1):
            differing = sorted(k for k in what if theirs.get(k) != found[0].get(k))
            if differing:
                problems.append(f"rank {rank} differs from rank 0 in {differing}")
        if problems:
            raise ConfigError(
                f"fit: the {self.size} ranks were not given the same fit: {'; '.join(problems)}. "
                "Every rank must call ionofield.fit with the same campaign, background, seed "
                "and options (each takes its share of every batch itself)"
            )


@contextlib.contextmanager
def process_group(device: str | torch.device | None = "auto") -> Iterator[World]:
    """The process group of a command started by ``torchrun``, for the block's duration.

    In a process started by ``torchrun`` with ``WORLD_SIZE`` > 1 and no process group
    yet, initialise one from the environment (NCCL when the fit runs on GPUs, gloo on
    the CPU) and destroy it at the end; otherwise leave things as they are.

    Parameters
    ----------
    device
        The fit's ``device=``: it picks the backend.

    Yields
    ------
    World
        The ranks (one process when not launched by torchrun).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if not launched or dist.is_initialized():
        yield World.current()
        return
    dist.init_process_group("nccl" if resolve_device(device).type == "cuda" else "gloo")
    try:
        yield World.current()
    finally:
        dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (or ``torch.distributed.run``)."""
    return LAUNCHED_BY in os.environ


def launch(program: Sequence[str], nproc: int) -> int:
    """Run ``program`` in ``nproc`` processes under ``torch.distributed.run`` (torchrun).

    A single-machine launch (``--standalone``: a rendezvous on a free local port);
    the command line ``ionofield fit --nproc N ...`` calls it with
    ``["-m", "ionofield", *its arguments]``, and each process then finds itself
    launched (:func:`launched_by_torchrun`) and fits its share.

    Parameters
    ----------
    program
        What torchrun runs: a script and its arguments, or ``-m`` and a module.
    nproc
        Number of processes (ranks), >= 1.

    Returns
    -------
    int
        torchrun's exit status (0 when every rank succeeded).

    Raises
    ------
    ConfigError
        ``nproc`` is not a positive int.
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc = {nproc!r} must be an int >= 1, e.g. --nproc 2")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", *program]
    return subprocess.run(command, check=False).returncode
