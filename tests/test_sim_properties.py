"""Random clients and random daemons against the simulated kernel.

A hypothesis state machine plays both sides: the client (QBUF through requests,
QBUF CAPTURE, nonblocking DQBUF, STREAMON/OFF, FLUSH, close and reopen) and the
daemon (pixels, consume only, pixels for a parked job, error, drop, duplicate,
unknown cookie, garbage, death, silence until the watchdog).  After every step:
no InvariantError, at most one job running, CAPTURE completions in cookie order
per context, the client's idea of which buffers it owns matches the kernel's,
and job accounting adds up.  At teardown every queued buffer came back once.

How we checked that this catches bookkeeping bugs: a throwaway script applied
each mutation below to backends/sim/kernel.py, ran this file with
--hypothesis-seed=1, 2 and 3 (default settings), and restored the file.  Every
mutation failed with every seed:
- complete_in_order with `continue` instead of `break` (a ready entry completes
  past a parked one): "cookie N completed out of cookie order".
- stop_streaming without the loop that returns ready-queue buffers:
  InvariantError "CAPTURE[0]@ctx1 still queued after stop_streaming".
- src_done without `self.job_finish(entry)` (the device is never freed):
  "running job is not in flight".
- _apply_frame not setting `ctx.held` (a held dst forgotten): held_is_consistent.
- fail_entry not returning a claimed src: InvariantError "cookie 1 completing
  with its src still claimed".
"""
from __future__ import annotations

import errno
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from daedalus_v4l2 import proto
from daedalus_v4l2.backends.sim import EntryState, SimKernel
from daedalus_v4l2.backends.sim.testing import CAP, OUT, SimClient
from daedalus_v4l2.backends.sim.vb2 import BufState

N_OUT, N_CAP = 3, 3
# Weighted by repetition: mostly decoding, often parking, sometimes trouble.
ACTIONS = ["pixels", "pixels", "consume", "consume", "parked_pixels", "parked_pixels", "error",
           "drop", "duplicate", "late"]


class SimMachine(RuleBasedStateMachine):

    @initialize(seed=st.integers(0, 3))
    def setup(self, seed):
        self.kernel = SimKernel(seed=seed, watchdog_ms=100)
        self.kernel.subscribe(self._on_event)
        self.transport = self.kernel.open_chardev()
        self.pending: dict[int, proto.DecodeRequest] = {}   # cookies the daemon has seen
        self.last_reply: dict[int, proto.FrameResponse] = {}
        self.last_completed: dict[int, int] = {}            # ctx id -> last completed cookie
        self.last_cap_ts: dict[int, int] = {}
        self.ts = 0
        self._open_client()

    # ---------------------------------------------------------------- bookkeeping

    def _on_event(self, event):
        if event.kind == "complete":
            last = self.last_completed.get(event.ctx_id, 0)
            assert event.cookie > last, f"cookie {event.cookie} completed out of cookie order"
            self.last_completed[event.ctx_id] = event.cookie

    def _open_client(self):
        self.client = SimClient(self.kernel, n_output=N_OUT, n_capture=N_CAP, width=32,
                                height=32, nonblock=True)
        self.owned = {OUT: set(range(N_OUT)), CAP: set(range(N_CAP))}
        self.client.streamon()

    def _return_all(self, buf_type):
        self.owned[buf_type] = set(range(N_OUT if buf_type == OUT else N_CAP))
        if buf_type == OUT:
            for fd in self.client.requests.values():
                self.client.sys.close(fd)
            self.client.requests.clear()

    # ---------------------------------------------------------------- client rules

    @precondition(lambda self: self.owned[OUT])
    @rule(hold=st.booleans(), same_ts=st.booleans(), data=st.data())
    def queue_output(self, hold, same_ts, data):
        index = data.draw(st.sampled_from(sorted(self.owned[OUT])))
        if not same_ts or self.ts == 0:
            self.ts += 1000
        if index in self.client.requests:      # a request fd left from an earlier round
            self.client.sys.close(self.client.requests.pop(index))
        self.client.queue_output(index, b"bits%d" % self.ts, self.ts, hold=hold)
        self.owned[OUT].discard(index)

    @precondition(lambda self: self.owned[CAP])
    @rule(data=st.data())
    def queue_capture(self, data):
        index = data.draw(st.sampled_from(sorted(self.owned[CAP])))
        self.client.queue_capture(index)
        self.owned[CAP].discard(index)

    @rule(buf_type=st.sampled_from([OUT, CAP]))
    def dqbuf(self, buf_type):
        try:
            got = self.client.dqbuf(buf_type)
        except OSError as exc:
            assert exc.errno in (errno.EAGAIN, errno.EINVAL), exc
            return
        assert got.index not in self.owned[buf_type], "a buffer came back twice"
        self.owned[buf_type].add(got.index)
        if buf_type == CAP:
            ctx = self.client.ctx.id
            assert got.timestamp_ns >= self.last_cap_ts.get(ctx, 0), "CAPTURE out of decode order"
            self.last_cap_ts[ctx] = got.timestamp_ns

    @precondition(lambda self: not (self.client.ctx.out_q.streaming
                                    and self.client.ctx.cap_q.streaming))
    @rule()
    def streamon(self):
        self.client.streamon()           # a no-op for a queue already streaming

    # ---------------------------------------------------------------- disruptions
    # Client and daemon trouble share one rule, so that most steps decode; `calm`
    # makes half of its draws do nothing, and shrinks towards trouble.

    @rule(what=st.sampled_from(["streamoff_out", "streamoff_cap", "flush", "reopen",
                                "unknown_cookie", "garbage", "kill", "watchdog"]),
          calm=st.booleans(), cookie=st.integers(10_000, 20_000), junk=st.binary(max_size=64))
    def trouble(self, what, calm, cookie, junk):
        if not calm:
            getattr(self, "_" + what)(cookie, junk)

    def _streamoff_out(self, cookie, junk):
        self.client.streamoff(OUT)
        self._return_all(OUT)

    def _streamoff_cap(self, cookie, junk):
        self.client.streamoff(CAP)
        self._return_all(CAP)

    def _flush(self, cookie, junk):
        self.client.flush()

    def _reopen(self, cookie, junk):
        self.client.close()
        self.kernel.ledger.check_all_returned()
        self._open_client()

    # ---------------------------------------------------------------- daemon rules

    def _daemon_reads(self):
        """The daemon reads everything queued for it (it answers in any order later)."""
        while (msg := self.transport.receive(0)) is not None:
            if msg.type == proto.MSG_DECODE:
                self.pending[msg.cookie] = msg
        # Cancelled jobs are forgotten (late answers are the "late" action's business).
        self.pending = {c: m for c, m in self.pending.items() if self.kernel.find_entry(c)}

    @precondition(lambda self: self.transport.closed or self.pending or self.transport.pending())
    @rule(i=st.integers(0, 7), action=st.sampled_from(ACTIONS))
    def daemon_reply(self, i, action):
        if self.transport.closed:           # a killed daemon is restarted by its supervisor
            self.transport = self.kernel.open_chardev()
        self._daemon_reads()
        if not self.pending:
            return
        cookie = sorted(self.pending)[i % len(self.pending)]
        msg = self.pending[cookie]
        if action == "drop":
            del self.pending[cookie]
            return
        if action in ("duplicate", "late"):
            if action == "late":            # an answer for some finished or cancelled job
                done = [c for c in self.last_reply if not self.kernel.find_entry(c)]
                cookie = done[i % len(done)] if done else cookie
            reply = self.last_reply.get(cookie)
            if reply is None:
                return
        else:
            flags = {"pixels": proto.FRAME_SRC_CONSUMED | proto.FRAME_HAS_PIXELS,
                     "consume": proto.FRAME_SRC_CONSUMED,
                     "parked_pixels": proto.FRAME_HAS_PIXELS,
                     "error": proto.FRAME_SRC_CONSUMED | proto.FRAME_ERROR}[action]
            if flags & proto.FRAME_HAS_PIXELS:
                try:
                    self.transport.capture_memory(msg)[:8] = cookie.to_bytes(8, "little")
                except OSError as exc:       # the job was cancelled meanwhile
                    assert exc.errno in (errno.EINVAL, errno.EBADF)
            reply = proto.FrameResponse(stream_id=msg.stream_id, cookie=cookie, flags=flags,
                                        plane_bytes=[msg.capture_size])
        self.last_reply[cookie] = reply
        self._send(reply)

    def _send(self, msg):
        """Late, duplicate and cancelled answers are refused with the module's errnos."""
        try:
            self.transport.send(msg)
        except OSError as exc:
            assert exc.errno in (errno.ENOENT, errno.EALREADY) or \
                (exc.errno == errno.EBADF and self.transport.closed), exc

    def _unknown_cookie(self, cookie, junk):
        before = self.kernel.stats.unknown_cookie
        self._send(proto.FrameResponse(stream_id=1, cookie=cookie, flags=proto.FRAME_ERROR))
        assert self.transport.closed or self.kernel.stats.unknown_cookie == before + 1

    def _garbage(self, cookie, junk):
        before = self.kernel.stats.rejected_messages
        try:
            self.transport._send_internal(junk)
        except OSError as exc:
            assert exc.errno in (errno.EINVAL, errno.EBADF)
        assert self.transport.closed or self.kernel.stats.rejected_messages == before + 1

    def _kill(self, cookie, junk):
        """The daemon dies; jobs queued before it is restarted fail at once."""
        self.kernel.faults.kill_daemon()
        assert all(e.state is not EntryState.SENT for e in self.kernel.inflight)
        self.pending.clear()
        if cookie % 2:
            self.transport = self.kernel.open_chardev()

    def _watchdog(self, cookie, junk):
        self.kernel.advance(self.kernel.watchdog_ms + 1)
        deadline = self.kernel.next_deadline()
        assert deadline is None or deadline > self.kernel.clock

    # ---------------------------------------------------------------- invariants

    @invariant()
    def one_job_at_a_time(self):
        kernel = self.kernel
        claimed = [e for e in kernel.inflight if e.src is not None]
        assert len(claimed) <= 1
        if claimed:
            assert kernel.running is claimed[0]
        assert kernel.running is None or kernel.running in kernel.inflight, \
            "running job is not in flight"

    @invariant()
    def client_and_kernel_agree_on_ownership(self):
        ctx = self.client.ctx
        for buf_type, q in ((OUT, ctx.out_q), (CAP, ctx.cap_q)):
            dequeued = {b.index for b in q.buffers if b.state is BufState.DEQUEUED}
            assert dequeued == self.owned[buf_type]

    @invariant()
    def held_is_consistent(self):
        """A context holds at most one dst, and the entry holding it is the one it names."""
        for ctx in self.kernel.contexts:
            held = [e for e in self.kernel.inflight
                    if e.ctx is ctx and e.state is EntryState.HELD]
            assert held == ([ctx.held] if ctx.held is not None else [])

    @invariant()
    def accounting_adds_up(self):
        s = self.kernel.stats
        # Every job ends in one CAPTURE completion, except slices whose held dst the
        # next slice took over.
        assert s.jobs == s.done + s.errors + len(self.kernel.inflight) + self.kernel.retired_held
        assert s.parked_now == sum(e.state is EntryState.PARKED for e in self.kernel.inflight)

    def teardown(self):
        if not hasattr(self, "client"):
            return
        self.client.streamoff()
        self.client.close()
        self.kernel.ledger.check_all_returned()
        assert self.kernel.inflight == [] and self.kernel.running is None


TestSimMachine = SimMachine.TestCase
TestSimMachine.settings = settings(
    max_examples=int(os.environ.get("SIM_EXAMPLES", "300")),
    stateful_step_count=int(os.environ.get("SIM_STEPS", "50")),
    deadline=None, suppress_health_check=[HealthCheck.too_slow])
