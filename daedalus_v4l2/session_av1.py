"""The AV1 decoder session: V4L2 AV1 requests into libdav1d.

An AV1 request carries one frame's OBUs (``V4L2_PIX_FMT_AV1_FRAME``) and
the controls; the sequence header only arrives as
``V4L2_CID_STATELESS_AV1_SEQUENCE``.  The session rebuilds the sequence
header OBU from it (:mod:`~daedalus_v4l2.codecs.av1_controls`) and puts it
in front of the frame whenever it changes, then feeds libdav1d, the only
software AV1 decoder in libavcodec (its native ``av1`` decoder needs a
hardware accelerator).

Decode order: libdav1d with ``max_frame_delay=1`` hands every shown frame
back from the call that fed it, so a client that waits for each picture
never stalls.  With frame threads (``daemon --threads frame``) dav1d picks
its own frame delay and the session parks and pushes as session.py says; its
no-op packet shows again a slot a non-key frame refreshed, or the key frame
that every slot holds.  Two kinds of frame need more than the frame itself:

* A hidden frame (``show_frame=0``): dav1d keeps it to itself, but its
  CAPTURE buffer must hold its picture.  As for VP9, a frame header OBU with
  ``show_existing_frame`` of a slot it refreshed follows it, in the frame's own
  packet; for a non-key frame that only outputs the picture (spec 7.21:
  nothing is reloaded).  A hidden *key* frame cannot be shown that way,
  because showing a key frame again reloads it into every slot: its picture
  comes from a scratch decoder instead (a key frame needs no references, so
  the pixels are the same).
* A key frame shown again by the client (``show_existing_frame`` of a key
  frame: no request, but every slot now holds it).  The next request's
  ``reference_frame_ts`` say so; the session replays the show-existing into
  dav1d before that frame and drops the picture it yields.
"""
from __future__ import annotations

import logging

import av

from . import dispatch, proto
from .codecs import av1_controls
from .codecs.av1_syntax import KEY_FRAME, NUM_REF_FRAMES
from .errors import UnsupportedError
from .session import NOOP_PTS, DecoderSession, check_size, first_slot, packet_of
from .v4l2 import uapi

log = logging.getLogger(__name__)



class _ResyncPacket(bytes):
    """Fed to the stream's decoder only to change its state; its picture is dropped."""


class _HiddenKeyFramePacket(bytes):
    """Decoded by a scratch decoder, whose picture is the request's."""


class Av1Session(DecoderSession):
    """AV1: the OUTPUT buffer holds one frame's OBUs; the sequence header is a control."""

    codec_name = "av1"  # decodes on libdav1d (below), not through dispatch

    def __init__(self, stream_id: int, **kwargs) -> None:
        super().__init__(stream_id, **kwargs)
        self._fed_sequence: bytes | None = None   # the control whose OBU dav1d has
        self._sequence_obu = b""
        self._rebuilt: dict[bytes, bytes] = {}    # sequence control -> its OBU, once inferred
        # What dav1d holds in each slot: (CAPTURE timestamp, is a key frame)
        self._slots: list[tuple[int, bool]] = [(0, False)] * NUM_REF_FRAMES

    # ------------------------------------------------------------------ packets
    def _packets(self, req: proto.DecodeRequest) -> list[bytes]:
        sequence = _control(req, uapi.V4L2_CID_STATELESS_AV1_SEQUENCE)
        frame = av1_controls.frame_from_control(_control(req, uapi.V4L2_CID_STATELESS_AV1_FRAME))
        check_size("the AV1 frame control", max(frame.frame_width_minus_1 + 1, frame.upscaled_width),
                   frame.frame_height_minus_1 + 1, req)
        data = bytes(req.bitstream)
        if not data:
            raise UnsupportedError("empty AV1 frame")
        packets = self._resync(frame)
        packets += self._with_picture(frame, self._with_sequence_header(sequence, req, data), data)
        self._update_slots(frame, req.timestamp)
        return packets

    def _with_sequence_header(self, sequence: bytes, req: proto.DecodeRequest,
                              data: bytes) -> bytes:
        """The frame, after the rebuilt sequence header if dav1d does not have it yet."""
        if sequence == self._fed_sequence:
            return data
        if sequence not in self._rebuilt:
            # the first frame of a sequence (a key frame) shows what the control leaves out
            seq = av1_controls.infer_sequence(
                av1_controls.sequence_from_control(sequence), data,
                _control(req, uapi.V4L2_CID_STATELESS_AV1_FRAME),
                req.controls.get(uapi.V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY))
            self._rebuilt[sequence] = av1_controls.write_sequence_header_obu(seq)
        self._sequence_obu = self._rebuilt[sequence]
        self._fed_sequence = sequence
        return self._sequence_obu + data

    def _with_picture(self, frame, packet: bytes, data: bytes) -> list[bytes]:
        """The frame's packet, and for a hidden frame what gets its picture out: the
        show-existing frame header in the same packet (one call into dav1d, not two:
        each call is a round trip through dav1d's threads and the daemon's), or for
        a hidden key frame a scratch decoder's packet after it."""
        if frame.flags & av1_controls.V4L2_AV1_FRAME_FLAG_SHOW_FRAME:
            return [packet]
        refresh = frame.refresh_frame_flags
        if not refresh:
            raise UnsupportedError("hidden AV1 frame refreshes no reference slot: "
                                   "it has no picture")
        show = av1_controls.show_existing_frame_obu(first_slot(refresh))
        if frame.frame_type == KEY_FRAME:
            return [packet, _HiddenKeyFramePacket(self._sequence_obu + data + show)]
        return [packet + show]

    def _resync(self, frame) -> list[bytes]:
        """Replay a key frame the client showed again (it refreshed every slot)."""
        wanted = list(frame.reference_frame_ts)
        held = [ts for ts, _ in self._slots]
        if wanted == held or len(set(wanted)) != 1 or not wanted[0]:
            return []
        for slot, (ts, is_key) in enumerate(self._slots):
            if ts == wanted[0] and is_key:
                log.debug("stream %d: key frame %d shown again: replayed into every slot",
                          self.stream_id, ts)
                self._slots = [self._slots[slot]] * NUM_REF_FRAMES
                return [_ResyncPacket(av1_controls.show_existing_frame_obu(slot))]
        return []

    def _update_slots(self, frame, timestamp: int) -> None:
        for slot in range(NUM_REF_FRAMES):
            if frame.refresh_frame_flags >> slot & 1:
                self._slots[slot] = (timestamp, frame.frame_type == KEY_FRAME)

    # ------------------------------------------------------------------ libdav1d
    def _context(self) -> av.CodecContext:
        # libdav1d directly, not through dispatch.open_decoder: the decoder
        # name and the no-delay option are what make decode-order output.
        if self._ctx is None:
            # each picture from the call that decoded it, unless the daemon runs frame
            # threads (0: dav1d's own choice of frame delay)
            delay = "0" if self.pipelined else "1"
            self._ctx = _new_dav1d(self.thread_count, delay)
            self.provider = dispatch.Provider("cpu", f"libdav1d, max_frame_delay={delay}")
        return self._ctx

    def _noop_packet(self) -> bytes | None:
        """Show a slot again: one a non-key frame refreshed (spec 7.21: nothing is
        reloaded), or the key frame every slot holds (reloading it changes nothing)."""
        for slot in range(NUM_REF_FRAMES - 1, -1, -1):
            ts, is_key = self._slots[slot]
            if ts and not is_key:
                return av1_controls.show_existing_frame_obu(slot)
        if self._slots[0][0] and len(set(self._slots)) == 1:
            return av1_controls.show_existing_frame_obu(0)
        return None

    def _feed(self, data: bytes, cookie: int) -> list[av.VideoFrame]:
        if isinstance(data, _ResyncPacket):
            return super()._feed(data, NOOP_PTS)  # its picture is dropped on delivery
        if isinstance(data, _HiddenKeyFramePacket):
            return _decode_alone(data, cookie, self.thread_count)
        return super()._feed(data, cookie)

    def drain(self, map_capture):
        flushed = bool(self._pending)   # drain flushes the decoder only when pictures are owed
        responses = super().drain(map_capture)
        if flushed:  # it forgot the sequence header (the pictures may be written behind)
            self._fed_sequence = None
        return responses


def _control(req: proto.DecodeRequest, cid: int) -> bytes:
    try:
        return bytes(req.controls[cid])
    except KeyError:
        raise UnsupportedError(f"AV1 request without control 0x{cid:x}") from None


def _new_dav1d(thread_count: int, max_frame_delay: str = "1") -> av.CodecContext:
    ctx = av.CodecContext.create("libdav1d", "r")
    ctx.options = {"max_frame_delay": max_frame_delay}
    ctx.thread_count = thread_count
    return ctx


def _decode_alone(data: bytes, cookie: int, thread_count: int) -> list[av.VideoFrame]:
    """Decode a self-contained packet (sequence header, key frame, show-existing)
    in a decoder of its own, leaving the stream's decoder untouched."""
    ctx = _new_dav1d(thread_count)
    frames = list(ctx.decode(packet_of(data, cookie))) + list(ctx.decode(None))
    log.debug("hidden key frame %d: %d picture(s) from a scratch decoder", cookie, len(frames))
    return frames
