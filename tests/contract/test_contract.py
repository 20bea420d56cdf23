"""The contracts of DESIGN.md, one suite for every backend (sim and hw).

Everything is checked from the client's side, through the client API
(``StatelessDecoder`` / ``StatelessPipeline``) and the ledger of
``backends.LedgerDecoder``: the same assertions hold for the simulated kernel
and for the real module with the real daemon on the other end of its chardev.

1. Decode order: every CAPTURE buffer comes back in request order, with its
   request's OUTPUT timestamp; a depth-1 client never stalls, hidden frames
   included.
3. Nothing lost: every QBUF'd buffer comes back exactly once (DQBUF, or
   STREAMOFF); a bad bitstream gives V4L2_BUF_FLAG_ERROR on that request's
   CAPTURE buffer and the stream goes on; STREAMOFF mid-stream returns in
   bounded time.
4. Bit-exact with Debian's ffmpeg.
"""
from __future__ import annotations

import errno
import time

import pytest

from daedalus_v4l2 import container
from daedalus_v4l2.backends.sim.validate import minimal_vp9_frame
from daedalus_v4l2.decode import StatelessPipeline, Vp9Client
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.client import CAPTURE, OUTPUT

from ..damage import Damaging, garbage_after_the_header, zeros
from ..reference import frame_md5s
from .backends import VP9_CLIPS


def decode(decoder, clip, client=None, depth=2, **options):
    """Decode ``clip`` through ``decoder``; the pictures, in display order."""
    info = container.probe(clip)
    pipeline = StatelessPipeline(decoder, client or Vp9Client(), info.width, info.height,
                                 depth=depth, **options)
    try:
        return list(pipeline.run(container.packets(clip)))
    finally:
        pipeline.close()


def md5s(pictures, name):
    spec = VP9_CLIPS[name]
    assert all(p.data is not None for p in pictures), [(p.number, p.error) for p in pictures
                                                       if p.data is None]
    return frame_md5s(b"".join(p.data for p in pictures), spec["width"], spec["height"])


def check_decode_order(ledger):
    """CAPTURE buffers came back in request order, each with its request's timestamp."""
    requests = ledger.request_timestamps()
    captures = [e.timestamp for e in ledger.of("dqbuf", CAPTURE)]
    assert captures == requests[:len(captures)], (
        f"CAPTURE timestamps {captures} are not the requests' {requests} in order")


@pytest.mark.parametrize("name", ["realtime-352x288", "good-322x182"])
def test_bit_exact_in_decode_order_and_nothing_lost(backend, vp9_clip, reference_md5s, name):
    with backend.open() as decoder:
        pictures = decode(decoder, vp9_clip(name))
        ledger = decoder.ledger
    assert md5s(pictures, name) == reference_md5s(name)
    check_decode_order(ledger)
    assert len(ledger.of("dqbuf", CAPTURE)) == len(ledger.request_timestamps())
    ledger.check_nothing_lost()


def test_depth_one_client_never_stalls_on_hidden_frames(backend, vp9_clip, reference_md5s):
    name = "good-352x288"
    with backend.open() as decoder:
        pictures = decode(decoder, vp9_clip(name), depth=1, timeout=30.0)
        ledger = decoder.ledger
    requests = ledger.request_timestamps()
    assert len(requests) > len(pictures), "no hidden frames: the clip does not test them"
    assert len(pictures) == VP9_CLIPS[name]["frames"]
    assert md5s(pictures, name) == reference_md5s(name)
    check_decode_order(ledger)
    ledger.check_nothing_lost()


def test_bad_bitstream_gives_error_on_its_capture_buffer_and_the_stream_goes_on(
        backend, vp9_clip, reference_md5s):
    name = "realtime-352x288"
    client = Damaging({5: zeros, 6: garbage_after_the_header})
    with backend.open() as decoder:
        pictures = decode(decoder, vp9_clip(name), client)
        ledger = decoder.ledger
    captures = ledger.of("dqbuf", CAPTURE)
    flagged = [e.timestamp for e in captures if e.flags & uapi.V4L2_BUF_FLAG_ERROR]
    damaged = client.damaged_timestamps
    # The damaged requests' own CAPTURE buffers carry ERROR, and nothing before them.
    # Frames that reference the damaged picture may fail too: how far that spreads
    # is libavcodec's business (it differs with its thread count), not the device's.
    assert set(damaged) <= set(flagged) and min(flagged) == damaged[0], (flagged, damaged)
    assert len(pictures) == VP9_CLIPS[name]["frames"]
    assert [p.number for p in pictures if p.data is None][:2] == [6, 7]
    # ... and the stream goes on: every request came back, the last ones intact.
    assert len(captures) == len(ledger.request_timestamps())
    assert not any(e.flags & uapi.V4L2_BUF_FLAG_ERROR for e in captures[-5:]), flagged
    check_decode_order(ledger)
    ledger.check_nothing_lost()
    # ... and the next stream on the same device is bit-exact.
    with backend.open() as decoder:
        assert md5s(decode(decoder, vp9_clip(name)), name) == reference_md5s(name)


def test_streamoff_mid_stream_returns_in_bounded_time_and_loses_nothing(
        backend, vp9_clip, reference_md5s):
    name = "realtime-352x288"
    clip = vp9_clip(name)
    info = container.probe(clip)
    with backend.open() as decoder:
        pipeline = StatelessPipeline(decoder, Vp9Client(), info.width, info.height, depth=6)
        run = pipeline.run(container.packets(clip))
        first = [next(run) for _ in range(3)]
        in_flight = decoder.ledger.queued[OUTPUT] - decoder.ledger.dequeued[CAPTURE]
        started = time.monotonic()
        pipeline.close()  # STREAMOFF OUTPUT, then CAPTURE, with requests in flight
        took = time.monotonic() - started
        run.close()
        ledger = decoder.ledger
    assert in_flight >= 2, "nothing was in flight when STREAMOFF came"
    assert took < backend.streamoff_bound, f"STREAMOFF took {took:.2f} s"
    assert all(p.data is not None for p in first)
    check_decode_order(ledger)
    ledger.check_nothing_lost()
    assert ledger.returned_by_streamoff[CAPTURE] > 0
    # The device decodes the next stream bit-exact.
    with backend.open() as decoder:
        assert md5s(decode(decoder, clip), name) == reference_md5s(name)


def _vp9_frame(**fields) -> bytes:
    """A valid profile-0 VP9 frame control, with ``fields`` changed (``lf_level``
    sets lf.level, ``quant_delta_q_y_dc`` quant.delta_q_y_dc, ...)."""
    frame = minimal_vp9_frame()
    for name, value in fields.items():
        target, attr = frame, name
        for part in ("lf", "quant", "seg"):
            if name.startswith(part + "_"):
                target, attr = getattr(frame, part), name[len(part) + 1:]
        setattr(target, attr, value)
    return bytes(uapi.ffi.buffer(frame))


OUT_OF_RANGE_VP9 = {
    "bit depth 0": {"bit_depth": 0},
    "10-bit in profile 0": {"bit_depth": 10},
    "profile 4": {"profile": 4},
    "profile 0 without 4:2:0": {"flags": uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING},
    "unknown frame flag": {"flags": 0x80000 | uapi.V4L2_VP9_FRAME_FLAG_X_SUBSAMPLING
                           | uapi.V4L2_VP9_FRAME_FLAG_Y_SUBSAMPLING},
    "frame context 4": {"frame_context_idx": 4},
    "64 tile columns": {"tile_cols_log2": 7},
    "interpolation filter 5": {"interpolation_filter": 5},
    "loop filter level 64": {"lf_level": 64},
    "quantizer delta 16": {"quant_delta_q_y_dc": 16},
    "segmentation flag 0x20": {"seg_flags": 0x20},
}


@pytest.mark.parametrize("case", sorted(OUT_OF_RANGE_VP9))
def test_out_of_range_controls_are_refused_when_set(backend, case):
    """The control core's range checks: EINVAL at S_EXT_CTRLS, on both backends,
    and the request takes a valid control afterwards."""
    with backend.open() as dec:
        dec.set_format(OUTPUT, uapi.V4L2_PIX_FMT_VP9_FRAME, 64, 48)
        dec.request_buffers(OUTPUT, 1)
        dec.request_buffers(CAPTURE, 1)
        request = dec.alloc_request()
        try:
            with pytest.raises(OSError) as refused:
                dec.set_controls({uapi.V4L2_CID_STATELESS_VP9_FRAME:
                                  _vp9_frame(**OUT_OF_RANGE_VP9[case])}, request)
            assert refused.value.errno == errno.EINVAL, refused.value
            dec.set_controls({uapi.V4L2_CID_STATELESS_VP9_FRAME: _vp9_frame()}, request)
        finally:
            request.close()
