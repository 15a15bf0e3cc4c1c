"""The default transactional id: unique among live replicas of a host, reused after a crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid

from daemon.replica_slot import default_transactional_id, lease_slot

# A process that leases a slot, prints its transactional id and holds it until killed.
HOLDER = ("import sys; from daemon.replica_slot import lease_slot, default_transactional_id as t; "
          "l = lease_slot(sys.argv[1]); print(t(sys.argv[1], l), flush=True); sys.stdin.read()")


def _holder(group: str) -> tuple[subprocess.Popen, str]:
    p = subprocess.Popen([sys.executable, "-c", HOLDER, group], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    return p, p.stdout.readline().strip()


def test_live_replicas_get_distinct_ids_and_a_killed_ones_id_is_reused():
    group = f"g-{uuid.uuid4().hex[:8]}"
    procs = [_holder(group) for _ in range(3)]
    try:
        ids = [tid for _, tid in procs]
        assert len(set(ids)) == 3, ids
        assert [tid.rsplit("-", 1)[1] for tid in ids] == ["0", "1", "2"]
        # SIGKILL: the process cannot release anything itself; the kernel ends the lease.
        killed, killed_id = procs[1]
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        restarted = _holder(group)
        procs.append(restarted)
        assert restarted[1] == killed_id
        # A paused replica keeps its lease: a replica started beside it takes a new slot.
        paused, paused_id = procs[0]
        paused.send_signal(signal.SIGSTOP)
        try:
            beside = _holder(group)
            procs.append(beside)
            assert beside[1] not in ids
        finally:
            paused.send_signal(signal.SIGCONT)
    finally:
        for p, _ in procs:
            p.kill()
            p.wait(10)


def test_groups_lease_slots_of_their_own_and_release_frees_the_slot():
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    la, lb = lease_slot(a), lease_slot(b)
    assert (la.slot, lb.slot) == (0, 0)
    assert default_transactional_id(a, la) != default_transactional_id(b, lb)
    la2 = lease_slot(a)
    assert la2.slot == 1
    la.release()
    la3 = lease_slot(a)
    assert la3.slot == 0
    for lease in (lb, la2, la3):
        lease.release()
