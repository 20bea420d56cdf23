"""The crash the claim rule prevents (docs/driver-model.md, "The crash the claim rule prevents").

With claim_policy="buf_done" the simulation peeks the dst at device_run and
takes it off the ready queue only at buf_done.  A parked dst then stays on the
ready queue after job_finish, the next device_run picks the same dst, and the
second completion does a second list_del: InvariantError at that call.  With
the default policy the same scenario completes in decode order.

If the list check in BufList.del_ were removed, the "buf_done" case would no
longer raise "second list_del" and test_peek_at_device_run_is_caught fails
(the state check would still raise, but with another message: the match below
pins the list check itself).
"""
from __future__ import annotations

import struct

import pytest

from daedalus_v4l2.backends.sim import SimKernel
from daedalus_v4l2.backends.sim.testing import CAP, OUT, ScriptedDaemon, SimClient
from daedalus_v4l2.errors import InvariantError

SEC = 1_000_000_000


def parked_scenario(policy: str):
    """Cookie 1 parks (consumed, no pixels); cookie 2 decodes at once; then cookie 1's
    pixels arrive.  Returns the cookies found in the CAPTURE buffers, in DQBUF order."""
    kernel = SimKernel(claim_policy=policy)
    daemon = ScriptedDaemon(kernel.open_chardev(),
                            policy=lambda m: "consume" if m.cookie == 1 else "pixels")
    daemon.attach(kernel)
    client = SimClient(kernel)
    client.streamon()
    client.queue_capture(0)
    client.queue_capture(1)
    client.queue_output(0, b"frame-1", 1 * SEC)
    client.queue_output(1, b"frame-2", 2 * SEC)
    client.dqbuf(OUT)
    client.dqbuf(OUT)
    kernel.run_until(lambda: not daemon.transport.pending())
    daemon.send_pixels(1)
    order = []
    for _ in range(2):
        index = client.dqbuf(CAP).index
        order.append(struct.unpack("<4sQ", bytes(client.cap_maps[index][:12]))[1])
    client.streamoff()
    client.close()
    kernel.ledger.check_all_returned()
    return kernel, order


def test_claim_at_device_run_survives_parking():
    kernel, order = parked_scenario("device_run")
    assert order == [1, 2]
    assert kernel.stats.parked_max == 1


def test_peek_at_device_run_is_caught():
    with pytest.raises(InvariantError, match="second list_del"):
        parked_scenario("buf_done")


def test_peek_policy_reuses_the_parked_dst():
    """What goes wrong before the crash: both jobs were given the same CAPTURE buffer."""
    kernel = SimKernel(claim_policy="buf_done")
    daemon = ScriptedDaemon(kernel.open_chardev(), policy=lambda m: "consume").attach(kernel)
    client = SimClient(kernel)
    client.streamon()
    client.queue_capture(0)
    client.queue_capture(1)
    client.queue_output(0, b"frame-1", 1 * SEC)
    client.queue_output(1, b"frame-2", 2 * SEC)
    kernel.run_until(lambda: not daemon.transport.pending())
    first, second = kernel.inflight
    assert first.dst is second.dst
    assert first.dst.list is client.ctx.cap_q.ready      # parked, yet still on the ready queue


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError):
        SimKernel(claim_policy="whenever")
