"""Give the server's own threads their Python names at the operating-system level.

Python names its threads for itself only: ``top -H``, ``ps -L`` and ``/proc/<pid>/task/*/comm``
show every thread of a server as ``ltr``. Naming the compute threads and the impression log's
writer there lets an operator (and ``benchmarks.serving_impressions``) see which one spends the
CPU. Linux only; elsewhere, or if the name cannot be written, nothing happens.
"""

from __future__ import annotations

import contextlib
import threading

LINUX_NAME_LIMIT = 15
"""The kernel keeps 15 bytes of a thread's name."""


def name_native_thread(name: str | None = None) -> None:
    """Name the calling thread ``name`` (default: its Python name) for the operating system,
    cut to :data:`LINUX_NAME_LIMIT` bytes."""
    name = threading.current_thread().name if name is None else name
    path = f"/proc/self/task/{threading.get_native_id()}/comm"
    with contextlib.suppress(OSError), open(path, "w") as comm:
        comm.write(name.encode("ascii", "replace")[:LINUX_NAME_LIMIT].decode())
