"""AV1 end to end on the sim backend: `daedalus-v4l2 decode` against Debian's ffmpeg CLI.

Clips are made here with SVT-AV1 (through PyAV), decoded through the
simulated V4L2 stateless device and the daemon (libdav1d in PyAV's
libavcodec), and compared frame by frame (MD5 of each tightly packed NV12
or P010 frame) with what Debian's ffmpeg 5.1 writes.  That ffmpeg decodes
AV1 with its own libdav1d 1.0 (``-c:v libdav1d`` is named so that it never
falls back to libaom), an independent build of an independent version.

SVT-AV1's default random-access mini-GOP codes hidden frames (show_frame=0)
that later temporal units show with show_existing_frame, so every clip
exercises the hidden-frame path; options add tiles, film grain and a
low-delay structure.  Widths are even: libswscale's yuv420p10le -> p010le
is wrong at odd widths (tests/test_pixels.py).
"""
from __future__ import annotations

import hashlib
import math

import av
import pytest

from daedalus_v4l2 import cli, container, pixels
from daedalus_v4l2.backends_runtime import open_decoder
from daedalus_v4l2.codecs import av1, av1_controls, av1_obu
from daedalus_v4l2.decode import decode_through
from daedalus_v4l2.threads import THREADS
from daedalus_v4l2.v4l2 import uapi

from .clips import cached_clip, ffmpeg_cli_clip
from .reference import ffmpeg_raw, frame_md5s

SVT_FAST = {"preset": "12"}  # fastest: these are tests, not pictures to look at

# name -> (width, height, frames, pix_fmt, encoder options)
CLIPS = {
    "8bit-352x288.ivf": (352, 288, 24, "yuv420p", SVT_FAST),
    "8bit-322x182.webm": (322, 182, 20, "yuv420p", SVT_FAST),
    "8bit-tiles-352x288.mkv": (352, 288, 12, "yuv420p",
                               dict(SVT_FAST, **{"svtav1-params": "tile-columns=1:tile-rows=1"})),
    "8bit-grain-176x144.ivf": (176, 144, 12, "yuv420p",
                               dict(SVT_FAST, **{"svtav1-params": "film-grain=8"})),
    "8bit-lowdelay-322x182.mp4": (322, 182, 16, "yuv420p",
                                  dict(SVT_FAST, **{"svtav1-params": "pred-struct=1"})),
    "10bit-352x288.mkv": (352, 288, 20, "yuv420p10le", SVT_FAST),
    "10bit-322x182.mp4": (322, 182, 16, "yuv420p10le", SVT_FAST),
}


# Clips from the other encoders, which only Debian's ffmpeg CLI has (PyAV's
# libavcodec has SVT-AV1 alone).  rav1e forces screen content tools off in
# its sequence header, which the V4L2 control cannot say: the daemon has to
# find it out from the key frame (av1_controls.infer_sequence).
# name -> (width, height, frames, pix_fmt, ffmpeg encoder arguments)
CLI_CLIPS = {
    "rav1e-176x144.ivf": (176, 144, 10, "yuv420p", ["-c:v", "librav1e", "-speed", "10"]),
    "rav1e-10bit-176x144.mkv": (176, 144, 8, "yuv420p10le", ["-c:v", "librav1e", "-speed", "10"]),
    "aom-realtime-176x144.webm": (176, 144, 10, "yuv420p",
                                  ["-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8"]),
}


def cli_clip(directory, name: str):
    width, height, frames, pix_fmt, encoder = CLI_CLIPS[name]
    return ffmpeg_cli_clip(directory, name, width, height, frames, pix_fmt, encoder)


@pytest.fixture(scope="module")
def clips(clip_dir):
    out = {}
    for name, (w, h, n, pix_fmt, opts) in CLIPS.items():
        suffix = name[name.rindex("."):]
        out[name] = cached_clip(clip_dir, suffix, codec="av1", width=w, height=h, frames=n,
                                pix_fmt=pix_fmt, options=opts)
    for name in CLI_CLIPS:
        out[name] = cli_clip(clip_dir, name)
    return out


def dav1d_raw(path, pix_fmt: str) -> bytes:
    """What Debian's ffmpeg writes, decoding with its libdav1d (never libaom)."""
    return ffmpeg_raw(path, pix_fmt, decoder="libdav1d")


def fourcc_of(pix_fmt: str) -> tuple[int, str]:
    if "10" in pix_fmt:
        return uapi.V4L2_PIX_FMT_P010, "p010le"
    return uapi.V4L2_PIX_FMT_NV12, "nv12"


def units_of(clip) -> list[av1.FrameUnit]:
    parser = av1.Av1Parser()
    return [unit for packet in container.packets(clip) for unit in parser.temporal_unit(packet)]


# --------------------------------------------------------------------------- bit-exact

@pytest.mark.parametrize("name", [*CLIPS, *CLI_CLIPS])
def test_decode_command_is_bit_exact_with_ffmpeg(clips, name, tmp_path):
    clip = clips[name]
    width, height, frames, pix_fmt, _ = {**CLIPS, **CLI_CLIPS}[name]
    _, ffmpeg_fmt = fourcc_of(pix_fmt)
    out = tmp_path / "out.raw"
    assert cli.main(["decode", str(clip), "-o", str(out), "-q"]) == 0
    expected = frame_md5s(dav1d_raw(clip, ffmpeg_fmt), width, height, ffmpeg_fmt)
    assert len(expected) == frames
    assert frame_md5s(out.read_bytes(), width, height, ffmpeg_fmt) == expected


def test_decode_help_says_10_bit_streams_give_p010(capsys):
    with pytest.raises(SystemExit):
        cli.main(["decode", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "P010" in help_text and "10-bit" in help_text and "p010le" in help_text


# --------------------------------------------------------------------------- what clips exercise

def test_the_clips_have_hidden_frames_tiles_and_film_grain(clips):
    """Otherwise the bit-exact tests above would not test those paths."""
    units = units_of(clips["8bit-352x288.ivf"])
    assert sum(not u.header.show_frame and not u.header.show_existing_frame for u in units) >= 3
    assert sum(u.header.show_existing_frame for u in units) >= 3
    assert max(len(u.tiles) for u in units_of(clips["8bit-tiles-352x288.mkv"])) == 4
    grain = units_of(clips["8bit-grain-176x144.ivf"])
    assert grain[0].sequence.film_grain_params_present
    assert any(u.header.film_grain.apply_grain for u in grain)
    assert all(u.header.show_frame or u.header.show_existing_frame
               for u in units_of(clips["8bit-lowdelay-322x182.mp4"]))
    assert units_of(clips["10bit-322x182.mp4"])[0].sequence.bit_depth == 10
    assert units_of(clips["rav1e-176x144.ivf"])[0].sequence.seq_force_screen_content_tools == 0


def test_every_request_completes_and_hidden_frames_are_requests(clips):
    clip = clips["8bit-352x288.ivf"]
    info = container.probe(clip)
    coded = sum(not u.header.show_existing_frame for u in units_of(clip))
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, "av1", info.width, info.height,
                                       container.packets(clip)))
        stats = opened.kernel.stats
    assert len(pictures) == CLIPS["8bit-352x288.ivf"][2]
    assert stats.jobs == coded and stats.done == stats.jobs and stats.errors == 0


def test_a_hidden_frame_and_its_picture_are_one_call_into_libdav1d(clips, monkeypatch):
    """The show-existing frame header that gets a hidden frame's picture out rides in
    the frame's own packet: one call into libdav1d a request (each call a round trip
    through dav1d's threads and the daemon's), and the pictures stay bit-exact (above)."""
    from daedalus_v4l2 import session
    clip = clips["8bit-352x288.ivf"]
    hidden = sum(not u.header.show_frame and not u.header.show_existing_frame
                 for u in units_of(clip))
    fed = []
    feed = session.DecoderSession._feed
    monkeypatch.setattr(session.DecoderSession, "_feed",
                        lambda self, data, cookie: fed.append(bytes(data)) or feed(self, data, cookie))
    info = container.probe(clip)
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, "av1", info.width, info.height,
                                       container.packets(clip)))
        stats = opened.kernel.stats
    assert hidden >= 3 and stats.errors == 0 and len(pictures) == CLIPS["8bit-352x288.ivf"][2]
    assert len(fed) == stats.jobs
    shows = [av1_controls.show_existing_frame_obu(slot) for slot in range(8)]
    assert sum(any(data.endswith(show) for show in shows) for data in fed) == hidden


@pytest.mark.parametrize("write_behind", [False, True])
@pytest.mark.parametrize("threads", ["slice", "frame"])
@pytest.mark.parametrize("name", ["8bit-352x288.ivf", "10bit-322x182.mp4"])
def test_a_client_that_waits_for_every_picture_never_stalls(clips, name, threads, write_behind):
    """With frame threads dav1d holds pictures back; without DECODE_MORE_QUEUED the
    session pushes them out with show-existing-frame packets.  Written behind, the
    one request in flight parks until its picture is written, and nothing more."""
    clip = clips[name]
    width, height, frames, pix_fmt, _ = CLIPS[name]
    fourcc, ffmpeg_fmt = fourcc_of(pix_fmt)
    with open_decoder("sim", daemon_options={**THREADS[threads], "write_behind": write_behind}) as opened:
        pictures = list(decode_through(opened.decoder, "av1", width, height,
                                       container.packets(clip), depth=1, timeout=5.0,
                                       capture_format=fourcc))
        # without the writer, every picture came with its own request
        assert opened.kernel.stats.parked_max == (1 if write_behind else 0)
    assert all(p.data is not None for p in pictures)
    expected = frame_md5s(dav1d_raw(clip, ffmpeg_fmt), width, height, ffmpeg_fmt)
    assert frame_md5s(b"".join(p.data for p in pictures), width, height, ffmpeg_fmt) == expected


@pytest.mark.parametrize("name", ["8bit-352x288.ivf", "10bit-322x182.mp4"])
def test_frame_threads_park_for_a_deep_client_bit_exact(clips, name):
    clip = clips[name]
    width, height, frames, pix_fmt, _ = CLIPS[name]
    fourcc, ffmpeg_fmt = fourcc_of(pix_fmt)
    # inline: how many requests queue up (and so park) must not depend on thread timing
    with open_decoder("sim", daemon_options=THREADS["frame"], daemon_thread=False) as opened:
        pictures = list(decode_through(opened.decoder, "av1", width, height,
                                       container.packets(clip), depth=6, timeout=5.0,
                                       capture_format=fourcc))
        assert opened.kernel.stats.parked_max > 0, "dav1d's frame threads should park pictures"
        assert opened.kernel.stats.errors == 0
    expected = frame_md5s(dav1d_raw(clip, ffmpeg_fmt), width, height, ffmpeg_fmt)
    assert frame_md5s(b"".join(p.data for p in pictures), width, height, ffmpeg_fmt) == expected


def test_an_8_bit_capture_format_for_a_10_bit_stream_is_an_error_not_a_crash(clips):
    clip = clips["10bit-322x182.mp4"]
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, "av1", 322, 182, container.packets(clip),
                                       capture_format=uapi.V4L2_PIX_FMT_NV12))
        stats = opened.kernel.stats
    assert pictures and all(p.data is None for p in pictures)
    assert stats.errors == stats.jobs  # every buffer came back, flagged


# --------------------------------------------------------------------------- key frames shown again

def hide_first_key_frame(packets: list[bytes]) -> list[bytes]:
    """The same stream, but its first key frame is hidden (show_frame=0,
    showable, not error resilient, refreshing slot 0 only) and the next
    temporal unit shows it with show_existing_frame.

    That is the "forward key frame" pattern: showing a key frame again reloads
    it into every slot (spec 7.21), so after it the eight slots hold what the
    original shown key frame left there and the rest of the stream decodes
    the same.  The hidden key frame itself decodes the same too (nothing in
    an intra frame's decoding depends on those three header fields).
    """
    parser = av1.Av1Parser()
    key = parser.temporal_unit(packets[0])[0]
    seq, header = key.sequence, key.header
    assert header.frame_type == av1.KEY_FRAME and header.show_frame
    assert not seq.frame_id_numbers_present_flag and not seq.decoder_model_info_present_flag
    first = packets[0]
    frame_obu = next(o for o in av1_obu.split_obus(first) if o.type == av1_obu.OBU_FRAME)
    assert frame_obu.end == len(first)
    payload = first[frame_obu.payload_start:frame_obu.end]
    bits = "".join(f"{byte:08b}" for byte in payload)[:header.header_bits]
    # show_existing_frame, frame_type, show_frame | showable_frame=1, error_resilient_mode=0
    after_show = 1 + 2 + 1
    # ... disable_cdf_update, allow_screen_content_tools, force_integer_mv,
    # frame_size_override_flag, order_hint | refresh_frame_flags=0x01
    sct = header.allow_screen_content_tools
    after_order_hint = after_show + 1 + 1 + (1 if sct else 0) + 1 + seq.order_hint_bits
    hidden_bits = (bits[:3] + "0" + "10" + bits[after_show:after_order_hint]
                   + "00000001" + bits[after_order_hint:])
    hidden_bits += "0" * (-len(hidden_bits) % 8)  # byte_alignment()
    tile_group = payload[math.ceil(header.header_bits / 8):]
    hidden = bytes(int(hidden_bits[i:i + 8], 2) for i in range(0, len(hidden_bits), 8)) + tile_group
    temporal_delimiter = av1_obu.obu(av1_obu.OBU_TEMPORAL_DELIMITER, b"")
    return [first[:frame_obu.start] + av1_obu.obu(av1_obu.OBU_FRAME, hidden),
            temporal_delimiter + av1_controls.show_existing_frame_obu(0),
            *packets[1:]]


def pyav_md5s(packets: list[bytes], width: int, height: int) -> list[str]:
    """libdav1d in PyAV, fed the packets directly (no V4L2)."""
    ctx = av.CodecContext.create("libdav1d", "r")
    frames = [f for p in packets for f in ctx.decode(av.Packet(p))] + list(ctx.decode(None))
    fourcc = uapi.V4L2_PIX_FMT_NV12
    planes, size = pixels.capture_layout(fourcc, width, height)
    out = []
    for frame in frames:
        buf = bytearray(size)
        pixels.pack_frame(frame, fourcc, planes, buf)
        picture = pixels.unpack_picture(buf, fourcc, planes, width, height)
        out.append(hashlib.md5(picture).hexdigest())
    return out


def test_a_hidden_key_frame_shown_again_decodes_like_the_shown_one(clips, caplog):
    """The hidden key frame's picture comes from a scratch decoder; the client's
    show-existing of it (no request) reloads every slot, which the daemon
    replays into libdav1d when the next request's reference_frame_ts say so."""
    caplog.set_level("DEBUG", logger="daedalus_v4l2.session_av1")
    clip = clips["8bit-352x288.ivf"]
    width, height, frames, _, _ = CLIPS["8bit-352x288.ivf"]
    original = list(container.packets(clip))
    forward_key = hide_first_key_frame(original)
    parser = av1.Av1Parser()
    units = [u for p in forward_key for u in parser.temporal_unit(p)]
    assert units[0].header.frame_type == av1.KEY_FRAME and not units[0].header.show_frame
    assert units[1].header.show_existing_frame and units[1].header.frame_type == av1.KEY_FRAME
    expected = frame_md5s(dav1d_raw(clip, "nv12"), width, height)
    # the rewritten stream is what it claims to be: dav1d alone decodes it to the same pictures
    assert pyav_md5s(forward_key, width, height) == expected
    with open_decoder("sim") as opened:
        pictures = list(decode_through(opened.decoder, "av1", width, height, forward_key, depth=1,
                                       timeout=5.0))
        stats = opened.kernel.stats
    assert stats.errors == 0
    assert "scratch decoder" in caplog.text and "replayed" in caplog.text
    got = frame_md5s(b"".join(p.data for p in pictures), width, height)
    assert got == expected
