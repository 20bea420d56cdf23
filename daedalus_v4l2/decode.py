"""Decoding a file through a stateless decoder device, the way a V4L2 client does.

``StatelessPipeline`` owns the buffers and requests of one decoder open and
the order rules of the stateless interface: CAPTURE buffers come back in
decode order, a CAPTURE buffer that a later frame references is not queued
again until no reference slot and no pending display needs it, and display
order is the client's business.  Codec knowledge sits in a ``CodecClient``
(``Vp9Client`` here, ``H264Client`` in codecs/h264_client.py): which OUTPUT
format, which controls per frame, which frames are shown and in what order.
"""
from __future__ import annotations

import errno
import functools
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from . import pixels
from .codecs import vp9
from .errors import BitstreamError, DeviceError, UnsupportedError
from .proto import Plane
from .v4l2 import uapi
from .v4l2.client import CAPTURE, OUTPUT, StatelessDecoder

log = logging.getLogger(__name__)

TIMESTAMP_STEP = 1000  # ns; V4L2 timestamps are whole microseconds


@dataclass
class Job:
    """One request's worth of work, or a re-display of a decoded picture."""
    data: bytes = b""
    timestamp: int = 0  # the OUTPUT (and so CAPTURE) timestamp of this request
    controls: dict[int, bytes] = field(default_factory=dict)
    shown: bool = True
    show_timestamp: int | None = None  # re-display of this earlier picture; no request
    hold: bool = False  # more requests (slices) of this picture follow: V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF
    # Timestamps that become displayable once this job is queued, in display
    # order (codecs that reorder, e.g. H.264 by POC); None: this job's own
    # picture if ``shown``.
    display: list[int] | None = None


@dataclass
class Picture:
    """A display-order picture: tightly packed, or the reason it failed.

    ``data`` is the picture's own copy, or with ``borrow`` (see
    ``StatelessPipeline``) a read-only view that is valid until the next
    picture is asked for."""
    number: int
    timestamp: int
    data: bytes | bytearray | memoryview | None
    error: str = ""
    packet: int | None = None  # set (number 0) for a packet refused before it became a request


class CodecClient:
    """The codec half of a stateless client."""
    output_format: int
    capture_buffers_needed: int = 4

    def jobs(self, packet: bytes, next_timestamp) -> list[Job]:
        raise NotImplementedError

    def configure(self, decoder: StatelessDecoder) -> None:
        """Codec controls of the device to read or set before streaming (e.g. H.264's
        decode mode and start code)."""

    def referenced_timestamps(self) -> set[int]:
        """CAPTURE timestamps later frames may still reference."""
        return set()

    def completed(self, timestamp: int) -> None:
        """The CAPTURE buffer of ``timestamp`` came back (its picture is decoded)."""

    def end_of_stream(self) -> list[int]:
        """Timestamps still to display when the stream ends, in display order."""
        return []


class Vp9Client(CodecClient):
    output_format = uapi.V4L2_PIX_FMT_VP9_FRAME
    capture_buffers_needed = 8 + 2  # eight reference slots, one decoding, one displaying

    def __init__(self) -> None:
        self.parser = vp9.Vp9Parser()
        self.refs = vp9.Vp9References()

    def jobs(self, packet: bytes, next_timestamp) -> list[Job]:
        out = []
        for frame in vp9.split_superframe(packet):
            header = self.parser.parse(frame)
            if header.show_existing_frame:
                # Shown again by the client, as GStreamer and FFmpeg do: no request.
                out.append(Job(show_timestamp=self.refs.slot_timestamp(header.frame_to_show_map_idx)))
                continue
            timestamp = next_timestamp()
            control = vp9.frame_control(header, *self.refs.refs_for(header))
            self.refs.update(header, timestamp)
            out.append(Job(frame, timestamp, {uapi.V4L2_CID_STATELESS_VP9_FRAME: control},
                           bool(header.show_frame)))
        return out

    def referenced_timestamps(self) -> set[int]:
        return {ts for ts in (self.refs.slot_timestamp(i) for i in range(8)) if ts}


def _h264_client() -> CodecClient:
    from .codecs.h264_client import H264Client  # imports this module: load it lazily
    return H264Client()


def _av1_client() -> CodecClient:
    from .codecs.av1_client import Av1Client  # imports this module: load it lazily
    return Av1Client()


CODEC_CLIENTS = {"vp9": Vp9Client, "h264": _h264_client, "av1": _av1_client}


def capture_format_for(pix_fmt: str | None) -> int:
    """The CAPTURE fourcc for a stream whose pictures are ``pix_fmt`` (libavcodec's
    name, from the container): P010 for 9- and 10-bit, NV12 for the rest."""
    if pix_fmt and any(depth in pix_fmt for depth in ("p9", "p10")):
        return uapi.V4L2_PIX_FMT_P010
    return uapi.V4L2_PIX_FMT_NV12


def codec_client(codec: str) -> CodecClient:
    try:
        return CODEC_CLIENTS[codec]()
    except KeyError:
        raise UnsupportedError(f"no stateless client for codec {codec!r}; "
                               f"supported: {', '.join(CODEC_CLIENTS)}") from None


class StatelessPipeline:
    """Buffers, requests and ordering for one decode through ``decoder``.

    ``depth`` is how many requests may be in flight before the client waits
    for a CAPTURE buffer; depth 1 is the strict "wait for each picture" client
    that the decode-order contract says must never stall.  ``output_buffers``
    (and as many requests, one for each): by default ``depth`` + 2, since a
    request completes with its picture: the requests in flight hold ``depth``
    of them while the next ones are filled.

    ``borrow`` hands each picture out without copying it, as a V4L2 client
    that reads or exports the CAPTURE buffer itself does: ``Picture.data`` is
    a read-only view of the mapped buffer (or, when the buffer's rows are
    padded, of one scratch picture the pipeline reuses), valid until the
    iterator is advanced, when the buffer goes back to the decoder.  Only
    ``Picture.data`` itself is released then: a slice of it or a numpy array
    made from it stays readable and shows whatever the buffer holds next (the
    daemon may be writing it).  A consumer that keeps a picture copies it
    (``bytes(picture.data)``).
    """

    def __init__(self, decoder: StatelessDecoder, codec: CodecClient, width: int, height: int,
                 *, depth: int = 2, output_buffers: int | None = None, timeout: float = 10.0,
                 output_sizeimage: int = 0, capture_format: int = uapi.V4L2_PIX_FMT_NV12,
                 borrow: bool = False) -> None:
        self.decoder, self.codec, self.depth, self.timeout = decoder, codec, depth, timeout
        self.width, self.height, self.borrow = width, height, borrow
        self._setup(width, height, output_buffers or depth + 2, output_sizeimage, capture_format)
        self._scratch: bytearray | None = None  # borrow with padded rows: the reused picture
        self._timestamp = 0
        self._frame_number = 0
        self._in_flight: deque[int] = deque()          # timestamps, decode order
        self._display: deque[tuple[int, bool]] = deque()  # (timestamp, is re-display)
        self._done: dict[int, tuple[int, str]] = {}    # timestamp -> (capture index, error)
        self._held: dict[int, int] = {}                # capture index -> timestamp (dequeued, not requeued)
        self.errors = 0

    # ------------------------------------------------------------------ setup
    def _setup(self, width, height, output_buffers, output_sizeimage, capture_format) -> None:
        d = self.decoder
        if self.codec.output_format not in d.enum_formats(OUTPUT):
            raise UnsupportedError(f"the device does not decode "
                                   f"{uapi.fourcc_str(self.codec.output_format)}")
        d.set_format(OUTPUT, self.codec.output_format, width, height, output_sizeimage)
        self.codec.configure(d)
        self.capture_format = d.set_format(CAPTURE, capture_format)  # NV12, or P010 for 10-bit
        caps = d.request_buffers(OUTPUT, output_buffers)
        if not caps & uapi.V4L2_BUF_CAP_SUPPORTS_REQUESTS:
            raise DeviceError(0, "the device's OUTPUT queue does not support requests")
        d.request_buffers(CAPTURE, self.codec.capture_buffers_needed + self.depth)
        self._free_output = deque(range(len(d.buffers[OUTPUT])))
        self._requests = {i: d.alloc_request() for i in self._free_output}
        d.streamon(OUTPUT)
        d.streamon(CAPTURE)
        for mapped in d.buffers[CAPTURE]:
            d.queue_capture(mapped.index)

    def planes(self) -> list[Plane]:
        fmt = self.capture_format
        bpl, rows = fmt.bytesperline, fmt.height
        return [Plane(0, bpl, rows), Plane(bpl * rows, bpl, (rows + 1) // 2)]

    # ------------------------------------------------------------------ run
    def run(self, packets: Iterable[bytes]) -> Iterator[Picture]:
        for number, packet in enumerate(packets, 1):
            try:
                jobs = self.codec.jobs(packet, self._next_timestamp)
            except BitstreamError as exc:  # damaged: this packet only (UnsupportedError ends it)
                # It never reaches the device, so it has no display slot: it is
                # reported as a packet, and the stream goes on with the next one.
                log.debug("packet %d (%d bytes): %s", number, len(packet), exc)
                self.errors += 1
                yield Picture(0, 0, None, f"{len(packet)} bytes not decoded: {exc}", packet=number)
                jobs = []
            for job in jobs:
                if job.show_timestamp is not None:
                    self._display.append((job.show_timestamp, True))
                else:
                    self._submit(job)
                while len(self._in_flight) >= self.depth:
                    self._collect_one()
                yield from self._emit_ready()
        for timestamp in self.codec.end_of_stream():
            self._display.append((timestamp, False))
        if self._in_flight:
            # End of stream: every request complete, pictures and all (the last
            # DECODE goes without DECODE_MORE_QUEUED, so a pipelined daemon hands
            # over what it holds); then the flush.
            self._wait_for_outputs()
            self.decoder.flush()
        while self._in_flight:
            self._collect_one()
        yield from self._emit_ready()

    def _next_timestamp(self) -> int:
        self._timestamp += TIMESTAMP_STEP
        return self._timestamp

    def _submit(self, job: Job) -> None:
        index = self._free_output_buffer()
        request = self._requests[index]
        timestamp = job.timestamp
        self.decoder.set_controls(job.controls, request)
        self.decoder.queue_output(index, job.data, timestamp, request, hold_capture=job.hold)
        request.queue()
        if not job.hold:  # a held CAPTURE buffer comes back with the picture's last slice
            self._in_flight.append(timestamp)
        if job.display is not None:
            self._display.extend((shown, False) for shown in job.display)
        elif job.shown:
            self._display.append((timestamp, False))

    def _free_output_buffer(self) -> int:
        while not self._free_output:
            self._reclaim_output()
        return self._free_output.popleft()

    def _wait_for_outputs(self) -> None:
        while len(self._free_output) < len(self._requests):
            self._reclaim_output()

    def _reclaim_output(self) -> None:
        # a request's OUTPUT buffer comes back once the daemon has its bitstream
        done = self.decoder.dequeue(OUTPUT, self.timeout, look_first=True)
        if done is None:
            raise DeviceError(0, f"no OUTPUT buffer came back within {self.timeout} s")
        request = self._requests[done.index]
        try:
            request.reinit()
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise DeviceError(exc.errno, f"MEDIA_REQUEST_IOC_REINIT: {exc.strerror}") from exc
            # the request completes with its picture: for a parked job, after its
            # OUTPUT buffer (docs/driver-model.md, Jobs)
            if not request.wait(self.timeout):
                raise DeviceError(0, f"the request of OUTPUT buffer {done.index} did not "
                                     f"complete within {self.timeout} s") from None
            request.reinit()
        self._free_output.append(done.index)

    def _collect_one(self) -> None:
        """Wait for the next CAPTURE buffer; it must be the oldest request's."""
        done = self.decoder.dequeue(CAPTURE, self.timeout)
        if done is None:
            raise DeviceError(0, f"no CAPTURE buffer came back within {self.timeout} s "
                                 f"({len(self._in_flight)} requests in flight)")
        expected = self._in_flight.popleft()
        if done.timestamp != expected:
            raise DeviceError(0, f"CAPTURE buffer out of decode order: got timestamp "
                                 f"{done.timestamp}, expected {expected}")
        error = (f"the decoder returned its CAPTURE buffer with V4L2_BUF_FLAG_ERROR (request "
                 f"{done.timestamp // TIMESTAMP_STEP}; the reason is in the daemon's log)"
                 if done.error else "")
        self._done[done.timestamp] = (done.index, error)
        self._held[done.index] = done.timestamp
        self.codec.completed(done.timestamp)
        self._recycle()

    def _emit_ready(self) -> Iterator[Picture]:
        while self._display and self._display[0][0] in self._done:
            timestamp, _ = self._display.popleft()
            index, error = self._done[timestamp]
            self._frame_number += 1
            if error:
                self.errors += 1
                yield Picture(self._frame_number, timestamp, None, error)
            elif self.borrow:
                view = self._view(index)
                try:
                    yield Picture(self._frame_number, timestamp, view)
                finally:
                    _release(view)
            else:
                yield Picture(self._frame_number, timestamp, self._read(index))
            self._recycle()

    def _read(self, index: int) -> bytearray:
        memory = self.decoder.buffers[CAPTURE][index].memory
        return pixels.unpack_picture(memory, self.capture_format.pixelformat, self.planes(),
                                     self.width, self.height)

    @functools.cached_property
    def _tight_size(self) -> int | None:
        """borrow: the tight picture's size if the CAPTURE buffers start with it
        (rows unpadded), else None.  Looked up at the first picture."""
        return pixels.tight_prefix(self.capture_format.pixelformat, self.planes(),
                                   self.width, self.height)

    def _view(self, index: int) -> memoryview:
        """A read-only view of the tight picture in CAPTURE buffer ``index``."""
        memory = self.decoder.buffers[CAPTURE][index].memory
        fourcc = self.capture_format.pixelformat
        if self._tight_size is not None:
            if len(memory) < self._tight_size:
                raise DeviceError(0, f"CAPTURE buffer {index} maps {len(memory)} bytes, its "
                                     f"picture needs {self._tight_size}")
            return memoryview(memory)[:self._tight_size].toreadonly()
        if self._scratch is None:
            self._scratch = bytearray(pixels.tight_size(fourcc, self.width, self.height))
        pixels.unpack_picture_into(memory, fourcc, self.planes(), self.width, self.height,
                                   self._scratch)
        return memoryview(self._scratch).toreadonly()

    def _recycle(self) -> None:
        """Queue again every held CAPTURE buffer no reference and no display needs."""
        needed = self.codec.referenced_timestamps() | {ts for ts, _ in self._display}
        for index, timestamp in list(self._held.items()):
            if timestamp not in needed:
                del self._held[index]
                self._done.pop(timestamp, None)
                self.decoder.queue_capture(index)

    def close(self) -> None:
        for buf_type in (OUTPUT, CAPTURE):
            try:
                self.decoder.streamoff(buf_type)
            except DeviceError as exc:
                log.warning("%s", exc)
        for request in self._requests.values():
            request.close()


def _release(view: memoryview) -> None:
    """Let go of a borrowed picture.  A consumer still holding a buffer export
    of the view itself (a ``pickle.PickleBuffer``, cffi's ``from_buffer``)
    keeps it alive; what it sees is then the next picture the buffer holds,
    as ``borrow`` says."""
    try:
        view.release()
    except BufferError:
        pass


def decode_through(decoder: StatelessDecoder, codec: str, width: int, height: int,
                   packets: Iterable[bytes], **options) -> Iterator[Picture]:
    pipeline = StatelessPipeline(decoder, codec_client(codec), width, height, **options)
    try:
        yield from pipeline.run(packets)
    finally:
        pipeline.close()
