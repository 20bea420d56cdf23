"""The AV1 half of a stateless client: temporal units in, requests out.

Each coded frame of a temporal unit becomes one request: its OBUs in the
OUTPUT buffer (``V4L2_PIX_FMT_AV1_FRAME``), with the sequence, frame, tile
group entry and (when the sequence has film grain) film grain controls.
Hidden frames get a request like any other (their picture lands in their
own CAPTURE buffer, not shown yet).  A ``show_existing_frame`` is no
request: the client shows that slot's CAPTURE buffer again, as GStreamer
and FFmpeg do, and when the shown frame is a key frame every slot now
holds it (spec 7.21), which the next request's ``reference_frame_ts`` say.

Frame headers, the reference slots and the frame and film grain controls are
C's (:mod:`~daedalus_v4l2.codecs.av1_native`), the per-request work; the
sequence header and its control, once a sequence, are Python's.
"""
from __future__ import annotations

from ..decode import CodecClient, Job
from ..errors import UnsupportedError
from ..v4l2 import uapi
from . import av1, av1_controls, av1_native


class Av1Client(CodecClient):
    output_format = uapi.V4L2_PIX_FMT_AV1_FRAME
    capture_buffers_needed = 8 + 2  # eight reference slots, one decoding, one displaying

    def __init__(self) -> None:
        self.parser = av1.Av1Parser(native=True)
        self.refs = av1.Av1References()
        # The parser replaces its sequence header, never edits it (av1.Av1Parser): a
        # header is checked, and its control built, when the object changes.
        self._sequence: av1.SequenceHeader | None = None
        self._sequence_control = b""

    def jobs(self, packet: bytes, next_timestamp) -> list[Job]:
        out = []
        for unit in self.parser.temporal_unit(packet):
            self._check_sequence(unit.sequence)
            header = unit.header
            if header.show_existing_frame:
                shown = self.refs.slot_timestamp(header.frame_to_show_map_idx)
                out.append(Job(show_timestamp=shown))
                self.refs.update(header, 0)
                continue
            self.refs.check_references(header)
            timestamp = next_timestamp()
            controls = self._controls(unit)
            self.refs.update(header, timestamp)
            out.append(Job(unit.data, timestamp, controls, bool(header.show_frame)))
        return out

    def _controls(self, unit: av1.FrameUnit) -> dict[int, bytes]:
        controls = {
            uapi.V4L2_CID_STATELESS_AV1_SEQUENCE: self._sequence_control,
            uapi.V4L2_CID_STATELESS_AV1_FRAME: av1_native.frame_control(unit.header,
                                                                         self.refs.slots),
            uapi.V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY: _tile_group_entries(unit),
        }
        if unit.sequence.film_grain_params_present:
            controls[uapi.V4L2_CID_STATELESS_AV1_FILM_GRAIN] = av1_native.film_grain_control(
                unit.header)
        return controls

    def _check_sequence(self, seq: av1.SequenceHeader) -> None:
        """Refuse, once per sequence header, a stream whose frame headers the
        daemon would read differently after rebuilding the sequence header
        from its control; else build that control."""
        if seq is self._sequence:
            return
        limits = av1_controls.rebuild_limits(seq)
        if limits:
            raise UnsupportedError("this AV1 sequence header says what V4L2_CID_STATELESS_AV1_"
                                   "SEQUENCE cannot carry: " + ", ".join(limits))
        self._sequence, self._sequence_control = seq, av1_controls.sequence_control(seq)

    def referenced_timestamps(self) -> set[int]:
        return {ts for ts in self.refs.slots if ts}


def _tile_group_entries(unit: av1.FrameUnit) -> bytes:
    """The control as the C walk gave it (no Python call a tile), else built."""
    if unit.tile_entries is not None:
        return unit.tile_entries
    return av1_controls.tile_group_entries(unit.tiles)
