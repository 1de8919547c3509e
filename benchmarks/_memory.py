"""Peak resident memory of this process, for the benchmark reports."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Linux's ``VmHWM`` starts afresh when a process execs, whereas ``ru_maxrss`` keeps
    the parent's high-water mark across fork and exec; so a benchmark stage run in a
    child process reports its own peak, not that of the script that launched it.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
