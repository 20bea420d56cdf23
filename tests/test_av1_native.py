"""The AV1 client's header work in C (daedalus_v4l2/native/, codecs/av1_native.py)
against the Python readers and control builders, the oracle: every field of
every sequence and frame header, the reference slots after every frame, and
the frame and film grain controls byte for byte, on real streams from three
encoders and on corrupted ones."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import random
import subprocess
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daedalus_v4l2 import _native, container
from daedalus_v4l2.codecs import av1, av1_client, av1_controls, av1_native, av1_obu, av1_syntax
from daedalus_v4l2.codecs.bitreader import BitReader
from daedalus_v4l2.errors import BitstreamError
from daedalus_v4l2.v4l2 import uapi

from .test_av1_decode import CLI_CLIPS, cli_clip
from .test_av1_parser import CLIPS


@pytest.fixture(scope="module")
def native():
    return types.SimpleNamespace(ffi=_native.ffi, lib=_native.lib)


@pytest.fixture(scope="module")
def clips(clip, clip_dir):
    """SVT-AV1 (tiles, film grain, 10-bit, hidden frames), rav1e and libaom."""
    out = {name: clip(name[name.rindex("."):], codec="av1", **params)
           for name, params in CLIPS.items()}
    out.update((name, cli_clip(clip_dir, name)) for name in CLI_CLIPS)
    return out


def frames_in(name: str) -> int:
    return CLIPS[name]["frames"] if name in CLIPS else CLI_CLIPS[name][2]


# --------------------------------------------------------------------------- field maps

def _flat(value):
    if isinstance(value, list):
        return [_flat(v) for v in value]
    return int(value)


def python_sequence(seq: av1_syntax.SequenceHeader) -> dict:
    out = {k: _flat(v) for k, v in dataclasses.asdict(seq).items() if k != "operating_points"}
    out["operating_points"] = [{k: int(v) for k, v in dataclasses.asdict(op).items()}
                               for op in seq.operating_points]
    return out


def c_sequence(ffi, seq) -> dict:
    out = {name: getattr(seq, name) for name, _ in ffi.typeof("dv_av1_sequence").fields
           if name not in ("operating_points", "operating_points_cnt")}
    out["operating_points"] = [{k: getattr(seq.operating_points[i], k) for k in
                                ("idc", "seq_level_idx", "seq_tier", "decoder_model_present",
                                 "initial_display_delay_present")}
                               for i in range(seq.operating_points_cnt)]
    return out


_GRAIN_LISTS = {"point_y_value": "num_y_points", "point_y_scaling": "num_y_points",
                "point_cb_value": "num_cb_points", "point_cb_scaling": "num_cb_points",
                "point_cr_value": "num_cr_points", "point_cr_scaling": "num_cr_points",
                "ar_coeffs_y_plus_128": "num_ar_coeffs_y",
                "ar_coeffs_cb_plus_128": "num_ar_coeffs_cb",
                "ar_coeffs_cr_plus_128": "num_ar_coeffs_cr"}


def python_grain(fg: av1_syntax.FilmGrain) -> dict:
    return {k: _flat(v) for k, v in dataclasses.asdict(fg).items()}


def c_grain(fg) -> dict:
    out = {}
    for name in python_grain(av1_syntax.FilmGrain()):
        if name in _GRAIN_LISTS:
            out[name] = list(getattr(fg, name))[:getattr(fg, _GRAIN_LISTS[name])]
        else:
            out[name] = getattr(fg, name)
    return out


# FrameHeader's nested dataclasses, by the prefix their fields have in C
_NESTED = {"quantization": "", "segmentation": "seg_", "loop_filter": "lf_", "cdef": "cdef_",
           "loop_restoration": ""}
_RENAMED = {"seg_seg_id_pre_skip": "seg_id_pre_skip", "seg_last_active_seg_id": "last_active_seg_id",
            "lf_delta_enabled": "lf_delta_enabled", "lf_level": "lf_level"}


def python_frame(h: av1_syntax.FrameHeader) -> dict:
    out = {}
    for f in dataclasses.fields(h):
        value = getattr(h, f.name)
        if f.name in _NESTED:
            for k, v in dataclasses.asdict(value).items():
                name = _NESTED[f.name] + k
                out[_RENAMED.get(name, name)] = _flat(v)
        elif f.name == "tile_info":
            info = value
            out.update(tile_uniform=int(info.uniform), tile_cols=info.tile_cols,
                       tile_rows=info.tile_rows, tile_cols_log2=info.tile_cols_log2,
                       tile_rows_log2=info.tile_rows_log2, mi_col_starts=list(info.mi_col_starts),
                       mi_row_starts=list(info.mi_row_starts),
                       context_update_tile_id=info.context_update_tile_id,
                       tile_size_bytes=info.tile_size_bytes, sb_shift=info.sb_shift)
        elif f.name == "film_grain":
            out["film_grain"] = python_grain(value)
        else:
            out[f.name] = _flat(value)
    return out


def c_fields(ffi, struct, like: dict) -> dict:
    """The fields of a C frame header or slot that ``like`` (the Python one's) names."""
    out = {}
    for name in like:
        if name == "film_grain":
            out[name] = c_grain(struct.film_grain)
        elif name in ("mi_col_starts", "mi_row_starts"):
            # only tile_info() fills them (Python's are empty before it)
            count = (struct.tile_cols if name == "mi_col_starts" else struct.tile_rows) + 1
            out[name] = list(getattr(struct, name))[:count] if like[name] else []
        else:
            value = getattr(struct, name)
            if isinstance(value, ffi.CData):
                value = [list(row) if isinstance(row, ffi.CData) else row for row in value]
            out[name] = value
    return out


def python_slot(slot: av1_syntax.RefSlot) -> dict:
    out = {f.name: _flat(getattr(slot, f.name)) for f in dataclasses.fields(slot)
           if f.name != "film_grain"}
    out["film_grain"] = python_grain(slot.film_grain)
    return out


# --------------------------------------------------------------------------- the two readers side by side

class Pair:
    """Both readers over one stream, compared after every header."""

    def __init__(self, native) -> None:
        self.ffi, self.lib = native.ffi, native.lib
        self.err = self.ffi.new("char[256]")
        self.c_seq = self.ffi.new("dv_av1_sequence *")
        self.c_slots = self.ffi.new("dv_av1_slot[8]")
        self.c_header = self.ffi.new("dv_av1_frame_header *")
        self.state = av1._ParserState()
        self.frames = 0

    def sequence(self, payload: bytes) -> None:
        try:
            py = av1_syntax.parse_sequence_header(payload)
        except BitstreamError:
            py = None
        rc = self.lib.dv_av1_parse_sequence(payload, len(payload), self.c_seq, self.err, 256)
        assert (rc == 0) == (py is not None), self.ffi.string(self.err)
        if py is not None:
            assert c_sequence(self.ffi, self.c_seq) == python_sequence(py)
            self.state.sequence = py

    def frame_header(self, payload: bytes, obu) -> av1_syntax.FrameHeader | None:
        if self.state.sequence is None:
            return None
        try:
            py = av1_syntax.FrameHeaderReader(BitReader(payload), self.state.sequence,
                                              self.state.slots, obu.temporal_id,
                                              obu.spatial_id).read()
        except (BitstreamError, IndexError, ValueError, ZeroDivisionError):
            py = None
        rc = self.lib.dv_av1_parse_frame_header(payload, len(payload), self.c_seq, self.c_slots,
                                                obu.temporal_id, obu.spatial_id, self.c_header,
                                                self.err, 256)
        assert (rc == 0) == (py is not None), (py, self.ffi.string(self.err))
        if py is None:
            return None
        expected = python_frame(py)
        got = c_fields(self.ffi, self.c_header, expected)
        assert got == expected, {k: (got[k], v) for k, v in expected.items() if got[k] != v}
        av1._update_references(self.state, py)
        self.lib.dv_av1_update_slots(self.c_slots, self.c_header)
        for py_slot, i in zip(self.state.slots, range(8)):
            want = python_slot(py_slot)
            assert c_fields(self.ffi, self.c_slots[i], want) == want, f"slot {i}"
        self.frames += 1
        return py

    def temporal_unit(self, data: bytes) -> None:
        pending = False
        for obu in av1_obu.split_obus(data):
            payload = data[obu.payload_start:obu.end]
            if obu.type == av1_obu.OBU_SEQUENCE_HEADER:
                self.sequence(payload)
            elif obu.type == av1_obu.OBU_FRAME_HEADER and not pending:
                header = self.frame_header(payload, obu)
                pending = header is not None and not header.show_existing_frame
            elif obu.type == av1_obu.OBU_FRAME:
                self.frame_header(payload, obu)
            elif obu.type == av1_obu.OBU_TILE_GROUP:
                pending = False


def test_every_header_of_real_streams_matches_the_python_reader(native, clips):
    for name, path in clips.items():
        pair = Pair(native)
        for packet in container.packets(path):
            pair.temporal_unit(bytes(packet))
        assert pair.frames >= frames_in(name), name


def test_controls_match_the_python_builders_byte_for_byte(clips):
    """The client's two parsers side by side: the same units, tiles and OBUs,
    and the same frame and film grain controls for every frame."""
    references = [1000 * (i + 1) for i in range(8)]
    grain_seen = 0
    for name, path in clips.items():
        python, native = av1.Av1Parser(), av1.Av1Parser(native=True)
        decoded = 0
        for packet in container.packets(path):
            want, got = python.temporal_unit(packet), native.temporal_unit(packet)
            assert [(u.data, u.tiles, u.temporal_id) for u in got] == \
                [(u.data, u.tiles, u.temporal_id) for u in want]
            for ours, theirs in zip(got, want):
                assert ours.sequence is theirs.sequence or ours.sequence == theirs.sequence
                if theirs.header.show_existing_frame:
                    assert ours.header.show_existing_frame
                    continue
                decoded += 1
                assert av1_native.frame_control(ours.header, references) == \
                    av1_controls.frame_control(theirs.header, references), name
                assert av1_native.film_grain_control(ours.header) == \
                    av1_controls.film_grain_control(theirs.header), name
                grain_seen += theirs.header.film_grain.apply_grain
        assert decoded >= frames_in(name) // 2, name
    assert grain_seen, "no clip applied film grain: the grain control went unchecked"


def test_the_c_walks_tiles_are_the_tile_group_entry_control(clips, monkeypatch):
    """dv_av1_unit_tile is struct v4l2_ctrl_av1_tile_group_entry: the C walk's tiles go
    into the request as they are, byte for byte what av1_controls builds, and the
    client builds nothing a tile (the multi-tile clip has 4 tiles a frame)."""
    tiles_seen, from_c = 0, 0
    for name, path in clips.items():
        native = av1.Av1Parser(native=True)
        for packet in container.packets(path):
            for unit in native.temporal_unit(packet):
                # the Python walk's units (a new sequence header) have none
                if unit.header.show_existing_frame or unit.tile_entries is None:
                    continue
                assert unit.tile_entries == av1_controls.tile_group_entries(unit.tiles), name
                tiles_seen, from_c = max(tiles_seen, len(unit.tiles)), from_c + 1
    assert tiles_seen >= 4 and from_c >= 60

    built = []
    python_builder = av1_controls.tile_group_entries
    monkeypatch.setattr(av1_controls, "tile_group_entries",
                        lambda tiles: built.append(tiles) or python_builder(tiles))
    client, timestamps = av1_client.Av1Client(), iter(range(1000, 10**9, 1000))
    jobs = [job for packet in container.packets(clips["tiles-grain-352x288.ivf"])
            for job in client.jobs(packet, lambda: next(timestamps))]
    entries = [job.controls[uapi.V4L2_CID_STATELESS_AV1_TILE_GROUP_ENTRY] for job in jobs
               if job.show_timestamp is None]
    assert len(entries) >= 10 and max(len(e) for e in entries) == 4 * uapi.ffi.sizeof(
        "struct v4l2_ctrl_av1_tile_group_entry")
    assert len(built) == 1      # the key frame's unit, with the sequence header: Python's walk


def test_a_show_existing_frame_has_no_frame_control(clips):
    native = av1.Av1Parser(native=True)
    for packet in container.packets(clips["random-access-352x288.ivf"]):
        for unit in native.temporal_unit(packet):
            if unit.header.show_existing_frame:
                with pytest.raises(ValueError, match="show_existing_frame"):
                    av1_native.frame_control(unit.header, [0] * 8)
                return
    pytest.fail("the random-access clip has no show-existing frame")


def test_a_bad_temporal_unit_leaves_the_native_state_alone(clips):
    """As the Python parser (test_av1_parser): a unit that fails parses as if it
    never came, so the next good one reads against the same slots."""
    packets = [bytes(p) for p in container.packets(clips["random-access-352x288.ivf"])]
    clean, damaged = av1.Av1Parser(native=True), av1.Av1Parser(native=True)
    for packet in packets[:3]:
        clean.temporal_unit(packet)
        damaged.temporal_unit(packet)
    with pytest.raises(BitstreamError):
        damaged.temporal_unit(packets[3][:len(packets[3]) // 2])
    for packet in packets[3:]:
        want = clean.temporal_unit(packet)
        got = damaged.temporal_unit(packet)
        assert [av1_native.frame_control(u.header, [0] * 8) for u in got
                if not u.header.show_existing_frame] == \
            [av1_native.frame_control(u.header, [0] * 8) for u in want
             if not u.header.show_existing_frame]


# --------------------------------------------------------------------------- the C walk

def _walker() -> av1.Av1Parser:
    """The client's parser with the OBU walk in Python (its headers still C's):
    what the C walk (av1_native.UnitReader) is held to."""
    parser = av1.Av1Parser(native=True)
    parser._unit_reader = None
    return parser


def _read(parser: av1.Av1Parser, packet: bytes):
    """What a temporal unit gives, header bytes and all, or the error it raises."""
    ffi = av1_native.ffi
    try:
        units = parser.temporal_unit(packet)
    except BitstreamError as exc:
        return str(exc)
    return [(bytes(ffi.buffer(u.header)), u.data, u.tiles, u.temporal_id, u.spatial_id,
             u.sequence) for u in units]


def _slots(parser: av1.Av1Parser) -> bytes:
    return bytes(av1_native.ffi.buffer(parser._state.native.slots))


def _count_c_reads(parser: av1.Av1Parser) -> list[int]:
    """[units the C walk read, units it left to the Python walk]"""
    counts, read = [0, 0], parser._unit_reader.read

    def counted(*args):
        frames = read(*args)
        counts[frames is None] += 1
        return frames
    parser._unit_reader.read = counted
    return counts


def test_the_c_walk_reads_every_unit_as_the_python_walk(clips):
    """Every temporal unit of the six clips (tiles, hidden frames, show-existing
    frames, film grain, 10-bit; SVT-AV1, rav1e, libaom): the same frames, OBUs,
    tiles and headers, and the same slots after it.  Only a unit that brings a
    sequence header other than the one in force goes the Python way."""
    for name, path in clips.items():
        fast, walk = av1.Av1Parser(native=True), _walker()
        counts = _count_c_reads(fast)
        sequences, current = 0, None
        for packet in container.packets(path):
            packet = bytes(packet)
            for obu in av1_obu.split_obus(packet):
                payload = packet[obu.payload_start:obu.end]
                if obu.type == av1_obu.OBU_SEQUENCE_HEADER and payload != current:
                    sequences, current = sequences + 1, payload
            got, want = _read(fast, packet), _read(walk, packet)
            assert got == want, name
            assert _slots(fast) == _slots(walk), name
        assert counts[1] <= sequences and counts[0] >= frames_in(name) // 2, (name, counts)


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_unit_reads_or_fails_alike_in_the_c_walk(real_packets, data):
    """Bytes overwritten anywhere in a real unit, or the unit cut short: the C walk
    reads what the Python walk reads, or leaves it to it, which fails with its own
    message; either way the next unit reads against the same state."""
    start = data.draw(st.integers(0, len(real_packets) - 3))
    fast, walk = av1.Av1Parser(native=True), _walker()
    packets = real_packets[start:start + 3]
    # a clip's first unit carries its sequence header; a later one may not
    first = next(p for p in real_packets[:start + 1][::-1]
                 if any(o.type == av1_obu.OBU_SEQUENCE_HEADER for o in av1_obu.split_obus(p)))
    for parser in (fast, walk):
        try:
            parser.temporal_unit(first)
        except BitstreamError:
            pass
    packet = bytearray(packets[0])
    if data.draw(st.booleans()):
        for _ in range(data.draw(st.integers(1, 4))):
            packet[data.draw(st.integers(0, len(packet) - 1))] = data.draw(st.integers(0, 255))
    else:
        packet = packet[:data.draw(st.integers(0, len(packet)))]
    for unit in (bytes(packet), *packets[1:]):
        assert _read(fast, unit) == _read(walk, unit)
        assert _slots(fast) == _slots(walk)


@pytest.fixture(scope="module")
def real_packets(clips):
    return [bytes(p) for path in clips.values() for p in container.packets(path)]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_headers_fail_or_match_alike(native, real_packets, data):
    """A flipped byte in a header: both readers refuse it, or both read the same fields."""
    pair = Pair(native)
    first = real_packets[0]
    pair.temporal_unit(first)
    packet = bytearray(data.draw(st.sampled_from(real_packets)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, min(len(packet), 64) - 1))
        packet[pos] = data.draw(st.integers(0, 255))
    try:
        obus = list(av1_obu.split_obus(bytes(packet)))
    except BitstreamError:
        return
    data_bytes = bytes(packet)
    for obu in obus:
        payload = data_bytes[obu.payload_start:obu.end]
        if obu.type == av1_obu.OBU_SEQUENCE_HEADER:
            pair.sequence(payload)
        elif obu.type in (av1_obu.OBU_FRAME_HEADER, av1_obu.OBU_FRAME):
            pair.frame_header(payload, obu)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=64))
def test_random_bytes_never_crash_and_fail_alike(native, payload):
    pair = Pair(native)
    pair.sequence(payload)


# --------------------------------------------------------------------------- memory safety

# Reads records (a kind byte, a little-endian u32 length, the bytes): R resets the
# state, S is a sequence header, F a frame header, read against the slots and, when
# it reads, folded into them, U a whole temporal unit for the C walk, against the
# last S.  Each record in a buffer of exactly its size, so that AddressSanitizer
# sees any read past it.
_ASAN_HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "av1_headers.h"

int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    dv_av1_sequence seq;
    dv_av1_slot slots[8];
    dv_av1_frame_header h;
    static dv_av1_frame_header headers[16];
    static dv_av1_unit_frame frames[16];
    static dv_av1_unit_tile tiles[1024];
    unsigned char *seq_payload = NULL;
    uint32_t seq_len = 0;
    char err[256];
    unsigned char head[5];
    long records = 0, read_ok = 0, units_ok = 0;

    if (!f)
        return 2;
    memset(&seq, 0, sizeof(seq));
    memset(slots, 0, sizeof(slots));
    while (fread(head, 1, 5, f) == 5) {
        uint32_t len = head[1] | head[2] << 8 | head[3] << 16 | (uint32_t)head[4] << 24;
        unsigned char *buf = malloc(len ? len : 1);

        if (!buf || fread(buf, 1, len, f) != len)
            return 2;
        if (head[0] == 'R') {
            memset(&seq, 0, sizeof(seq));
            memset(slots, 0, sizeof(slots));
            free(seq_payload);
            seq_payload = NULL;
        } else if (head[0] == 'S') {
            if (dv_av1_parse_sequence(buf, len, &seq, err, sizeof(err)) == 0) {
                free(seq_payload);
                seq_payload = malloc(len ? len : 1);
                memcpy(seq_payload, buf, len);
                seq_len = len;
            }
        } else if (head[0] == 'U') {
            unsigned char *out = malloc(len ? len : 1);

            units_ok += dv_av1_temporal_unit(buf, len, seq_payload, seq_len, &seq, slots,
                                             headers, frames, 16, tiles, 1024, out, len) >= 0;
            free(out);
        } else if (dv_av1_parse_frame_header(buf, len, &seq, slots, 0, 0, &h, err,
                                             sizeof(err)) == 0) {
            dv_av1_update_slots(slots, &h);
            read_ok++;
        }
        records++;
        free(buf);
    }
    printf("%ld %ld %ld\n", records, read_ok, units_ok);
    return 0;
}
"""


def _record(kind: bytes, data: bytes) -> bytes:
    return kind + len(data).to_bytes(4, "little") + data


def _header_records(path) -> list[tuple[bytes, bytes]]:
    out = []
    for packet in container.packets(path):
        data = bytes(packet)
        for obu in av1_obu.split_obus(data):
            payload = data[obu.payload_start:obu.end]
            if obu.type == av1_obu.OBU_SEQUENCE_HEADER:
                out.append((b"S", payload))
            elif obu.type in (av1_obu.OBU_FRAME, av1_obu.OBU_FRAME_HEADER):
                out.append((b"F", payload[:256]))  # the header is in front; tiles do not matter
        # and the unit again, whole, for the C walk (whose headers read against the
        # slots the F records just moved on: some fail, all stay in bounds)
        out.append((b"U", data))
    return out


def _mutated_corpus(streams, cases: int, seed: int) -> bytes:
    """Runs of real headers, from the start or anywhere, with bytes overwritten,
    payloads cut short, or random bytes in their place."""
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(cases):
        records = rng.choice(streams)
        start = 1 if rng.random() < 0.5 else rng.randrange(len(records))
        out += _record(b"R", b"") + _record(*records[0])
        for kind, data in records[start:start + rng.randint(1, 40)]:
            data, r = bytearray(data), rng.random()
            if r < 0.4 and data:
                reach = len(data) if kind == b"U" else min(len(data), 48)
                for _ in range(rng.randint(1, 4)):
                    data[rng.randrange(reach)] = rng.randrange(256)
            elif r < 0.6:
                data = data[:rng.randrange(len(data) + 1)]
            elif r < 0.7:
                data = bytearray(rng.randbytes(rng.randint(0, 40)))
            out += _record(kind, bytes(data))
    return bytes(out)


def test_the_c_reader_stays_in_bounds_under_address_sanitizer(clips, tmp_path):
    """The C reader built alone with ASan and UBSan (any error aborts), over 2,000
    runs of mutated real headers and temporal units from the six clips: no read out
    of bounds, no undefined behaviour, and over 5,000 frame headers and 3,000 units
    still read (the mutations reach the deep paths).  Without the reader's bounds
    check it fails (ASan: heap-buffer-overflow in f())."""
    import daedalus_v4l2
    native_dir = pathlib.Path(daedalus_v4l2.__file__).parent / "native"
    (tmp_path / "harness.c").write_text(_ASAN_HARNESS)
    harness = tmp_path / "harness"
    subprocess.run(["gcc", "-O1", "-g", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{native_dir}", str(tmp_path / "harness.c"),
                    str(native_dir / "av1_headers.c"), "-o", str(harness)], check=True)
    corpus = tmp_path / "corpus.bin"
    corpus.write_bytes(_mutated_corpus([_header_records(p) for p in clips.values()], 2000, 0))
    run = subprocess.run([str(harness), str(corpus)], capture_output=True, text=True,
                         env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
                              "UBSAN_OPTIONS": "print_stacktrace=1"}, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    records, read_ok, units_ok = map(int, run.stdout.split())
    assert records > 20000 and read_ok > 5000 and units_ok > 3000, run.stdout
