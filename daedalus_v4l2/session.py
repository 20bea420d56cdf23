"""Decoder sessions: one per V4L2 context, on PyAV's libavcodec.

A session turns DECODE requests into FRAME responses.  It feeds libavcodec in
decode order, one request's bitstream at a time, with the request's cookie as
the packet's pts, so every picture libavcodec hands back names the request it
belongs to.  A picture that is not out yet when its bitstream has been
consumed (a pipelined decoder) is *parked*: the request is answered
``SRC_CONSUMED`` now and ``HAS_PIXELS`` when the picture appears.

Codec subclasses say which packets a request becomes (``_packets``): VP9
adds a one-byte "show existing frame" packet after a hidden frame, because
libavcodec does not output hidden frames but a stateless decoder must put
every request's picture in its CAPTURE buffer.

Frame threads and the decode-order contract.  libavcodec's frame threads
decode several pictures at once and hand each back only after the packets of
the next ones have been fed: a client that waits for each picture before
queuing the next request would wait for ever.  So a frame-threaded session
parks a picture only when the kernel says another job is queued behind its
request (``DECODE_MORE_QUEUED``): that job's DECODE will come, and feeding it
moves the pipeline on.  Without the flag the session *pushes* the pipeline:
it feeds no-op packets (a VP9 or AV1 "show existing frame", an H.264 end
of sequence: pictures libavcodec makes without touching its references,
which the session drops) until every picture it owes has come out.  A deep client
gets frame parallelism; a client that waits for each picture never stalls.

Write-behind (``emit`` set by a daemon with a writer, writer.py): a request is
answered ``SRC_CONSUMED`` before its packets are fed, and each picture is
handed to the writer thread, which copies it into its CAPTURE buffer and sends
``HAS_PIXELS`` while libavcodec decodes the next request.
"""
from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import av

from . import dispatch, pixels, proto
from .codecs import vp9
from .errors import DecodeError, UnsupportedError

log = logging.getLogger(__name__)

MapCapture = Callable[[proto.DecodeRequest], memoryview]

# The pts of a no-op packet: the picture it yields belongs to no request.
NOOP_PTS = -1
PIPELINED_THREAD_TYPES = ("FRAME", "AUTO")  # the ones that let libavcodec use frame threads


@dataclass
class Pending:
    """A request whose picture libavcodec has not handed back yet."""
    request: proto.DecodeRequest
    consumed: bool = False


def error_response(req: proto.DecodeRequest, reason: str, status: int = -errno.EINVAL,
                   consumed: bool = True) -> proto.FrameResponse:
    """The FRAME that ends ``req`` with ERROR (and SRC_CONSUMED unless already sent)."""
    flags = proto.FRAME_ERROR | (proto.FRAME_SRC_CONSUMED if consumed else 0)
    return proto.FrameResponse(req.stream_id, req.cookie, flags, status=status, reason=reason)


def unexpected_error_response(req: proto.DecodeRequest, exc: Exception,
                              consumed: bool = True) -> proto.FrameResponse:
    """ERROR (EIO) for a failure no bitstream explains (a bug): the request ends, the
    daemon goes on."""
    return error_response(req, f"daemon: {type(exc).__name__}: {exc}", status=-errno.EIO,
                          consumed=consumed)


class DecoderSession:
    """The decoder of one stream (one V4L2 context)."""

    codec_name: str = ""
    provider: dispatch.Provider | None = None  # set when the decoder opens

    def __init__(self, stream_id: int, *, thread_count: int = 0, thread_type: str = "SLICE") -> None:
        self.stream_id = stream_id
        self.thread_count, self.thread_type = thread_count, thread_type
        self._ctx: av.CodecContext | None = None  # opened on first use
        self._pending: dict[int, Pending] = {}
        self.frames_out = 0
        # Set by a daemon with a picture writer (writer.py): where this session puts
        # what its writer thread is to send, in order (write-behind).
        self.emit: Callable[[Callable[[], proto.FrameResponse | None]], None] | None = None

    # ------------------------------------------------------------------ public
    def decode(self, req: proto.DecodeRequest, map_capture: MapCapture) -> list[proto.FrameResponse]:
        """Responses for this request and for any parked request whose picture came out."""
        try:
            packets = self._packets(req)
        except ValueError as exc:  # BitstreamError, UnsupportedError, a control that does not convert
            log.warning("stream %d cookie %d: %s", req.stream_id, req.cookie, exc)
            return [error_response(req, str(exc))]
        pending = self._pending[req.cookie] = Pending(req)
        if self.write_behind:
            self._consume(pending)
        responses: list[proto.FrameResponse] = []
        try:
            for data in packets:
                responses += self._deliver(self._feed(data, req.cookie), map_capture)
        except (av.error.FFmpegError, ValueError) as exc:
            log.warning("stream %d cookie %d: libavcodec rejected the bitstream: %s",
                        req.stream_id, req.cookie, exc)
            if not self.pipelined:
                return responses + self._fail_current(pending, error_response(
                    req, f"libavcodec: {exc}", consumed=not pending.consumed))
            # With frame threads the error may be an earlier packet's: every request
            # whose picture does not come out of the pushed pipeline gets it.
            return responses + self._push(map_capture, f"libavcodec: {exc}")
        except Exception as exc:  # a bug, not the bitstream: this request fails, the stream goes on
            log.exception("stream %d cookie %d: unexpected failure", req.stream_id, req.cookie)
            return responses + self._fail_current(pending, unexpected_error_response(
                req, exc, consumed=not pending.consumed))
        if self.pipelined and not req.flags & proto.DECODE_MORE_QUEUED:
            responses += self._push(map_capture, "libavcodec gave no picture")
        return responses + self._answer_current(req)

    def _fail_current(self, pending: Pending, error: proto.FrameResponse) -> list[proto.FrameResponse]:
        """``error`` for the request being decoded, which stops waiting for a picture;
        nothing if its picture came out before the failure (it has its answer)."""
        if self._pending.pop(pending.request.cookie, None) is None:
            return []
        return [error]

    def drain(self, map_capture: MapCapture) -> list[proto.FrameResponse]:
        """Every picture still inside libavcodec, then errors for any that never came.

        Draining ends libavcodec's stream (its references are dropped), so it
        happens only when pictures are owed: with slice threading none ever are
        (written behind too: the request parks before its packets are fed, but
        its picture leaves libavcodec in that same call), and a FLUSH in the
        middle of a stream changes nothing.
        """
        if not self._pending:
            return []
        responses: list[proto.FrameResponse] = []
        if self._ctx is not None:
            try:
                responses += self._deliver(self._ctx.decode(None), map_capture)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("stream %d: drain failed: %s", self.stream_id, exc)
            self._ctx.flush_buffers()
        for cookie, pending in sorted(self._pending.items()):
            responses.append(error_response(pending.request, "no picture after drain",
                                            consumed=not pending.consumed))
        self._pending.clear()
        return responses

    def close(self) -> None:
        self._pending.clear()
        ctx, self._ctx = self._ctx, None
        if ctx is not None:
            # Let libavcodec's threads finish first, with the GIL released (PyAV's
            # flush_buffers does): PyAV frees a context holding the GIL, and a frame
            # thread that calls back into Python then (a log line) waits for ever.
            ctx.flush_buffers()

    @property
    def write_behind(self) -> bool:
        return self.emit is not None

    @property
    def parked(self) -> int:
        return sum(1 for p in self._pending.values() if p.consumed)

    @property
    def pipelined(self) -> bool:
        """Whether libavcodec may hand a picture back after the call that fed it."""
        return self.thread_type in PIPELINED_THREAD_TYPES and self.thread_count != 1

    # ------------------------------------------------------------------ pipeline
    def _noop_packet(self) -> bytes | None:
        """A packet whose decode changes no reference and yields a picture to drop
        (codec subclasses); None when there is none to make yet."""
        return None

    def _push(self, map_capture: MapCapture, reason: str) -> list[proto.FrameResponse]:
        """No-op packets until libavcodec has handed back every picture it owes (it
        holds at most one a frame thread), then an error for any that did not come."""
        responses: list[proto.FrameResponse] = []
        threads = self._ctx.thread_count if self._ctx is not None else 0
        for _ in range(threads + 1):
            noop = self._noop_packet() if self._pending else None
            if noop is None:
                break
            try:
                responses += self._deliver(self._feed(noop, NOOP_PTS), map_capture)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("stream %d: pushing the pipeline: %s", self.stream_id, exc)
        for cookie, pending in sorted(self._pending.items()):
            responses.append(error_response(pending.request, reason, consumed=not pending.consumed))
        self._pending.clear()
        return responses

    # ------------------------------------------------------------------ internals
    def _packets(self, req: proto.DecodeRequest) -> list[bytes]:
        """The packets libavcodec gets for this request (codec subclasses)."""
        return [bytes(req.bitstream)]

    def _context(self) -> av.CodecContext:
        if self._ctx is None:
            # the dispatch seam: libavcodec on the CPU, or libdaedalus_core when installed
            self._ctx, self.provider = dispatch.open_decoder(
                self.codec_name, thread_count=self.thread_count, thread_type=self.thread_type)
            log.info("stream %d: %s decodes on %s (%s)", self.stream_id, self.codec_name,
                     self.provider.name, self.provider.detail)
        return self._ctx

    def _feed(self, data: bytes, cookie: int) -> list[av.VideoFrame]:
        return self._context().decode(packet_of(data, cookie))

    def _deliver(self, frames, map_capture: MapCapture) -> list[proto.FrameResponse]:
        responses = []
        for frame in frames:
            if frame.pts == NOOP_PTS:
                continue
            pending = self._pending.pop(frame.pts, None)
            if pending is None:
                log.warning("stream %d: picture for unknown cookie %s dropped", self.stream_id, frame.pts)
                continue
            if self.write_behind:
                self.emit(functools.partial(self._write_behind, frame, pending, map_capture))
            else:
                response = self._write_picture(frame, pending, map_capture)
                if response is not None:
                    responses.append(response)
        return responses

    def _consume(self, pending: Pending) -> None:
        """write_behind: the bitstream is the session's own now (it came in the
        DECODE), so SRC_CONSUMED goes out before libavcodec decodes it: sent by the
        writer while libavcodec decodes, it ends the job, and the kernel sends the
        next DECODE meanwhile."""
        pending.consumed = True
        req = pending.request
        self.emit(lambda: proto.FrameResponse(req.stream_id, req.cookie, proto.FRAME_SRC_CONSUMED))

    def _write_behind(self, frame: av.VideoFrame, pending: Pending,
                      map_capture: MapCapture) -> proto.FrameResponse | None:
        """In the writer's thread: the picture, or an error that still ends the request
        (nothing if its job was cancelled meanwhile)."""
        try:
            return self._write_picture(frame, pending, map_capture)
        except Exception as exc:  # a parked request must get an answer, whatever failed
            req = pending.request
            log.exception("stream %d cookie %d: writing the picture failed", req.stream_id, req.cookie)
            return unexpected_error_response(req, exc, consumed=not pending.consumed)

    def _write_picture(self, frame: av.VideoFrame, pending: Pending,
                       map_capture: MapCapture) -> proto.FrameResponse | None:
        """The FRAME that hands the picture over, or ends the request with ERROR;
        None when the kernel has no job for it any more (nothing to answer)."""
        req = pending.request
        flags = proto.FRAME_HAS_PIXELS | (0 if pending.consumed else proto.FRAME_SRC_CONSUMED)
        try:
            memory = map_capture(req)
            picture = pixels.pack_frame(frame, req.capture_fourcc, req.planes, memory,
                                        digest=not req.flags & proto.DECODE_NO_DIGEST)
        except (DecodeError, UnsupportedError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
                # not in flight any more: STREAMOFF cancelled it while libavcodec held it.
                # An ERROR for it would only be refused (and counted) a second time.
                log.info("stream %d cookie %d: picture dropped, the kernel cancelled its job",
                         req.stream_id, req.cookie)
                return None
            log.warning("stream %d cookie %d: %s", req.stream_id, req.cookie, exc)
            return error_response(req, str(exc), consumed=not pending.consumed)
        self.frames_out += 1
        return proto.FrameResponse(
            req.stream_id, req.cookie, flags, width=picture.width, height=picture.height,
            fourcc=picture.fourcc, plane_bytes=picture.plane_bytes, digest=picture.digest)

    def _answer_current(self, req: proto.DecodeRequest) -> list[proto.FrameResponse]:
        """SRC_CONSUMED alone if this request's picture is not out yet: it parks."""
        pending = self._pending.get(req.cookie)
        if pending is None or pending.consumed:
            return []  # answered already, with its picture or (write_behind) consumed
        pending.consumed = True
        return [proto.FrameResponse(req.stream_id, req.cookie, proto.FRAME_SRC_CONSUMED)]


class Vp9Session(DecoderSession):
    """VP9: the OUTPUT buffer holds one whole frame, headers included."""

    codec_name = "vp9"

    def __init__(self, stream_id: int, **kwargs) -> None:
        super().__init__(stream_id, **kwargs)
        self.parser = vp9.Vp9Parser()
        self._noop: bytes | None = None  # shows a slot some frame fed so far refreshed

    def _noop_packet(self) -> bytes | None:
        return self._noop

    def _packets(self, req: proto.DecodeRequest) -> list[bytes]:
        data = bytes(req.bitstream)
        header = self.parser.parse(data)
        if not header.show_existing_frame:
            check_size("VP9 frame header", header.width, header.height, req)
        if header.refresh_frame_flags and not header.show_existing_frame:
            self._noop = vp9_show_existing_frame(header.profile,
                                                 first_slot(header.refresh_frame_flags))
        if header.show_frame or header.show_existing_frame:
            return [data]
        # libavcodec keeps a hidden frame (an alt-ref) to itself; asking it to
        # show a slot the frame refreshed (the no-op packet, made just above)
        # hands the picture back without touching any decoder state.
        if not header.refresh_frame_flags:
            raise UnsupportedError("hidden VP9 frame refreshes no reference slot: it has no picture")
        return [data, self._noop]


def first_slot(refresh_frame_flags: int) -> int:
    """The lowest reference slot a refresh_frame_flags mask names (VP9 and AV1)."""
    return (refresh_frame_flags & -refresh_frame_flags).bit_length() - 1


def vp9_show_existing_frame(profile: int, slot: int) -> bytes:
    """A VP9 frame that only says "show reference slot N" (spec 6.2, show_existing_frame)."""
    bits = [1, 0, profile & 1, profile >> 1]  # frame_marker, profile_low_bit, profile_high_bit
    if profile == 3:
        bits.append(0)  # reserved_zero
    bits += [1] + [(slot >> s) & 1 for s in (2, 1, 0)]
    bits += [0] * (-len(bits) % 8)
    return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def _align16(n: int) -> int:
    return (n + 15) & ~15


def packet_of(data: bytes, pts: int) -> av.Packet:
    """A packet with its own copy of ``data``, in memory libavcodec allocated with
    the zeroed padding its decoders may read past the end (AV_INPUT_BUFFER_PADDING_SIZE).
    ``av.Packet(data)`` lends the bytes object instead: no padding, and a free
    callback that takes the GIL inside the decode call."""
    packet = av.Packet(len(data))
    packet.update(data)
    packet.pts = packet.dts = pts
    return packet


def check_size(what: str, width: int, height: int, req: proto.DecodeRequest) -> None:
    """Each session's ``_packets`` checks the size its request declares (VP9 in the
    bitstream, H.264 in its SPS control, AV1 in its frame control), before anything
    else.  A picture larger than the stream's OUTPUT format cannot fit its CAPTURE
    buffer; refusing it before libavcodec sees it also keeps a damaged header
    (16000x16000 in a 64x48 stream) from costing seconds and half a GiB."""
    if width > _align16(req.coded_width) or height > _align16(req.coded_height):
        raise UnsupportedError(f"{what} says {width}x{height}, larger than the stream's "
                               f"{req.coded_width}x{req.coded_height} (the OUTPUT format)")


def _av1_session(stream_id: int, **kwargs) -> DecoderSession:
    from .session_av1 import Av1Session  # it subclasses DecoderSession: load it lazily
    return Av1Session(stream_id, **kwargs)


def _h264_session(stream_id: int, **kwargs) -> DecoderSession:
    from .session_h264 import H264Session  # it subclasses DecoderSession: load it lazily
    return H264Session(stream_id, **kwargs)


SESSIONS: dict[int, Callable[..., DecoderSession]] = {proto.CODEC_VP9: Vp9Session,
                                                      proto.CODEC_H264: _h264_session,
                                                      proto.CODEC_AV1: _av1_session}


def open_session(stream_id: int, codec: int, **kwargs) -> DecoderSession:
    try:
        cls = SESSIONS[codec]
    except KeyError:
        raise UnsupportedError(f"codec {proto.CODEC_NAMES.get(codec, codec)} is not supported") from None
    return cls(stream_id, **kwargs)
