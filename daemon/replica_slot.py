"""The default transactional id of a replica: ``<group_id>-<hostname>-<slot>``.

Two needs pull apart. Replicas running at once must not share an id: a producer's start fences
every other producer with its id, so two replicas of one host would fence each other in turn.
A replica started after a crash must take the dead one's id: starting a producer with it aborts
the transaction the dead one left open, which would otherwise hold back ``read_committed``
readers of the output topic until the broker times it out (never, on some brokers).

So each replica leases a slot, the lowest number no live process of this host holds for its
group. The lease ends with its process, SIGKILL included (the kernel releases it), so a
restarted replica finds the crashed one's slot free and takes it. A paused process keeps its
lease: a replica started beside it takes another slot and does not fence it; the consumer
group does (its generation) on brokers with KIP-447.

On Linux the lease is an abstract Unix socket name: one namespace per network namespace, so
processes of one host share it whatever their temp directory or user (containers of one pod
too), and nothing is left on disk. Elsewhere it is an ``flock`` on a file in the temp directory.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import sys
import tempfile
from pathlib import Path

from daemon.errors import DaemonError

# More replicas of one group on one host than any deployment runs; past it, something leaks leases.
MAX_SLOTS = 1024


class SlotLease:
    """A held slot; released by :meth:`release` or when the process ends."""

    def __init__(self, slot: int, handle: socket.socket | int) -> None:
        self.slot = slot
        self._handle: socket.socket | int | None = handle

    def release(self) -> None:
        if isinstance(self._handle, socket.socket):
            self._handle.close()
        elif self._handle is not None:
            os.close(self._handle)
        self._handle = None


def _lease_name(group_id: str, slot: int) -> str:
    # A hash keeps any group id within the 107 bytes of a Unix socket name and out of file names.
    return f"sentistream-txn-{hashlib.sha256(group_id.encode()).hexdigest()[:24]}-{slot}"


def _try_lease(name: str) -> socket.socket | int | None:
    if sys.platform == "linux":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind("\0" + name)
        except OSError as e:
            sock.close()
            if e.errno == errno.EADDRINUSE:
                return None
            raise
        return sock
    import fcntl

    try:
        fd = os.open(Path(tempfile.gettempdir()) / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except PermissionError:
        return None  # another user's replica holds (or held) this slot
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def lease_slot(group_id: str) -> SlotLease:
    """The lowest slot of ``group_id`` that no live process of this host holds."""
    for slot in range(MAX_SLOTS):
        try:
            handle = _try_lease(_lease_name(group_id, slot))
        except OSError as e:
            raise DaemonError(f"cannot lease a transactional-id slot ({e}): set SENTISTREAM_KAFKA__TRANSACTIONAL_ID "
                              "to an id unique to this replica") from None
        if handle is not None:
            return SlotLease(slot, handle)
    raise DaemonError(f"all {MAX_SLOTS} transactional-id slots of group {group_id!r} are held on this host: set "
                      "SENTISTREAM_KAFKA__TRANSACTIONAL_ID to an id unique to this replica")


def default_transactional_id(group_id: str, lease: SlotLease) -> str:
    return f"{group_id}-{socket.gethostname()}-{lease.slot}"
