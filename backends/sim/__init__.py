"""The simulated kernel module: an in-process model of daedalus_v4l2.ko.

Same objects, states and rules as the C module (docs/driver-model.md),
deterministic when the daemon runs inline.  The client talks to it through
``kernel.syscalls()`` and the daemon through ``kernel.open_chardev()``; blocking
client calls drive it, or wait for the daemon's own thread (DaemonThread).
"""
from .chardev import SimTransport
from .context import SimContext
from .daemon_thread import DaemonThread
from .inflight import EntryState, InflightEntry
from .kernel import SimDeadlock, SimKernel
from .stats import Faults, SimEvent, SimStats
from .request import MediaRequest, ReqState
from .syscalls import SimSyscalls
from .vb2 import BufState, Ledger, Vb2Buffer, Vb2Queue

__all__ = [
    "SimKernel", "SimTransport", "DaemonThread", "SimDeadlock", "SimContext", "SimSyscalls", "SimStats",
    "SimEvent", "Faults", "InflightEntry", "EntryState", "MediaRequest", "ReqState",
    "Vb2Buffer", "Vb2Queue", "BufState", "Ledger",
]
