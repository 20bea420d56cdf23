"""The client side of H.264 for a V4L2 stateless decoder (``V4L2_PIX_FMT_H264_SLICE``).

For every picture the client reads the slice headers (in C:
:mod:`.h264_native`, held to :mod:`.h264`'s reader by the tests), works out the
picture order count and the reference pictures (:mod:`.h264_dpb`), and sends
the slices with their controls: SPS, PPS, scaling matrix and decode params
for every request; slice params and prediction weights per slice in
slice-based mode.  It sends no SPS or PPS NAL units: the device only sees
slices, as the stateless uAPI says.

The device says how it wants the slices (``V4L2_CID_STATELESS_H264_DECODE_MODE``
and ``_START_CODE``, menus): :meth:`H264Client.configure` reads what it
supports, picks (a preference if the device takes it, else its current
value) and sets it.  Frame-based: one request per picture, all its slices.
Slice-based: one request per slice, the CAPTURE buffer held
(``V4L2_BUF_FLAG_M2M_HOLD_CAPTURE_BUF``) for all but the last slice.

Display order is decided here too (the bumping process of the DPB model):
each picture's last job carries the timestamps that become displayable.
"""
from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

from daedalus_v4l2.codecs import h264, h264_native
from daedalus_v4l2.codecs.h264 import Pps, SliceHeader, Sps
from daedalus_v4l2.codecs.h264_controls import (
    decode_params_control, pps_control, pred_weights_control, scaling_matrix_control,
    scaling_matrix_in_use, slice_params_control, sps_control)
from daedalus_v4l2.codecs.h264_dpb import CurrentPicture, Dpb, PocState
from daedalus_v4l2.decode import CodecClient, Job
from daedalus_v4l2.errors import DeviceError, UnsupportedError
from daedalus_v4l2.v4l2 import uapi
from daedalus_v4l2.v4l2.uapi import ffi

log = logging.getLogger(__name__)

FRAME_BASED = uapi.V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED
SLICE_BASED = uapi.V4L2_STATELESS_H264_DECODE_MODE_SLICE_BASED
ANNEX_B = uapi.V4L2_STATELESS_H264_START_CODE_ANNEX_B
NO_START_CODE = uapi.V4L2_STATELESS_H264_START_CODE_NONE
START_CODE = b"\x00\x00\x00\x01"


# ====================================================================
# Menu controls of the device (the mode it decodes in)
# ====================================================================

def _ioctl(decoder, request: int, arg, what: str) -> None:
    try:
        decoder.sys.ioctl(decoder.video_fd, request, arg)
    except OSError as exc:
        raise DeviceError(exc.errno, f"{what}: {exc.strerror or errno.errorcode.get(exc.errno)}") from exc


def menu_range(decoder, cid: int) -> tuple[int, int]:
    """(minimum, maximum) of an integer menu control (VIDIOC_QUERY_EXT_CTRL)."""
    query = ffi.new("struct v4l2_query_ext_ctrl *")
    query.id = cid
    _ioctl(decoder, uapi.VIDIOC_QUERY_EXT_CTRL, query, f"VIDIOC_QUERY_EXT_CTRL 0x{cid:x}")
    return query.minimum, query.maximum


def _menu_control(decoder, cid: int, value: int | None, request: int, what: str) -> int:
    array = ffi.new("struct v4l2_ext_control[1]")
    array[0].id = cid
    if value is not None:
        array[0].value = value
    ctrls = ffi.new("struct v4l2_ext_controls *")
    ctrls.which, ctrls.count, ctrls.controls = uapi.V4L2_CTRL_WHICH_CUR_VAL, 1, array
    _ioctl(decoder, request, ctrls, f"{what} 0x{cid:x}")
    return array[0].value


def get_menu(decoder, cid: int) -> int:
    return _menu_control(decoder, cid, None, uapi.VIDIOC_G_EXT_CTRLS, "VIDIOC_G_EXT_CTRLS")


def set_menu(decoder, cid: int, value: int) -> None:
    _menu_control(decoder, cid, value, uapi.VIDIOC_S_EXT_CTRLS, "VIDIOC_S_EXT_CTRLS")


def choose_menu(decoder, cid: int, preferred: int | None) -> int:
    """The preference if the device takes it, else its current value; then set."""
    low, high = menu_range(decoder, cid)
    value = preferred if preferred is not None and low <= preferred <= high else get_menu(decoder, cid)
    set_menu(decoder, cid, value)
    return value


def parameter_set_controls(sps: Sps, pps: Pps) -> dict[int, bytes]:
    """The SPS, PPS and (when either has lists) scaling matrix controls."""
    controls = {uapi.V4L2_CID_STATELESS_H264_SPS: sps_control(sps),
                uapi.V4L2_CID_STATELESS_H264_PPS: pps_control(pps, sps)}
    if scaling_matrix_in_use(pps, sps):
        controls[uapi.V4L2_CID_STATELESS_H264_SCALING_MATRIX] = \
            scaling_matrix_control(pps.scaling_matrix)
    return controls


# ====================================================================
# The client
# ====================================================================

@dataclass
class _Slice:
    nal: bytes
    header: SliceHeader


@dataclass
class _Picture:
    slices: list[_Slice] = field(default_factory=list)


class H264Client(CodecClient):
    output_format = uapi.V4L2_PIX_FMT_H264_SLICE
    # a full DPB (16), the picture being decoded, one being displayed, one spare
    capture_buffers_needed = 16 + 3

    def __init__(self, decode_mode: int | None = None, start_code: int | None = None) -> None:
        self.preferred_mode, self.preferred_start_code = decode_mode, start_code
        self.decode_mode, self.start_code = FRAME_BASED, ANNEX_B
        self.slice_headers = h264_native.SliceHeaderReader()
        self.sps_by_id: dict[int, Sps] = {}
        self.pps_by_id: dict[int, Pps] = {}
        self.poc = PocState()
        self.dpb = Dpb()
        self._in_flight_refs: dict[int, set[int]] = {}  # picture timestamp -> refs it reads
        # the SPS, PPS and scaling matrix controls, built once for each pair of sets
        self._parameter_set_controls = h264.LastPair(parameter_set_controls)
        self.pictures = 0

    # ---- CodecClient ----
    def configure(self, decoder) -> None:
        self.decode_mode = choose_menu(decoder, uapi.V4L2_CID_STATELESS_H264_DECODE_MODE,
                                       self.preferred_mode)
        self.start_code = choose_menu(decoder, uapi.V4L2_CID_STATELESS_H264_START_CODE,
                                      self.preferred_start_code)
        log.info("H.264: %s decoding, %s", "frame-based" if self.decode_mode == FRAME_BASED
                 else "slice-based", "Annex B start codes" if self.start_code == ANNEX_B
                 else "no start codes")

    def jobs(self, packet: bytes, next_timestamp) -> list[Job]:
        jobs = []
        for picture in self._pictures(h264_native.split_annexb(packet)):
            jobs += self._picture_jobs(picture, next_timestamp())
        return jobs

    def referenced_timestamps(self) -> set[int]:
        held = self.dpb.held_timestamps()
        for refs in self._in_flight_refs.values():
            held |= refs
        return held

    def completed(self, timestamp: int) -> None:
        self._in_flight_refs.pop(timestamp, None)

    def end_of_stream(self) -> list[int]:
        return self.dpb.flush()

    # ---- NAL units to pictures ----
    def _pictures(self, nals: list[bytes]) -> list[_Picture]:
        pictures: list[_Picture] = []
        previous: SliceHeader | None = None
        for nal in nals:
            kind = h264.nal_header(nal).nal_unit_type
            if kind in (h264.NAL_SPS, h264.NAL_PPS):
                self.read_parameter_set(nal)
            elif kind in h264.VCL_NAL_TYPES:
                header = self.slice_headers.read(nal, self.sps_by_id, self.pps_by_id)
                if header.redundant_pic_cnt:
                    continue  # redundant coded pictures are for error recovery only
                if h264.first_slice_of_new_picture(previous, header):
                    pictures.append(_Picture())
                pictures[-1].slices.append(_Slice(nal, header))
                previous = header
            elif kind in (h264.NAL_SLICE_DPA, 3, 4):
                raise UnsupportedError("H.264 data partitioning (Extended profile)")
        return pictures

    def read_parameter_set(self, nal: bytes) -> None:
        """An SPS or PPS NAL unit, kept by its id for the slices that name it."""
        if h264.nal_header(nal).nal_unit_type == h264.NAL_SPS:
            sps = h264.parse_sps(nal)
            self.sps_by_id[sps.seq_parameter_set_id] = sps
        else:
            pps = h264.parse_pps(nal, self.sps_by_id)
            self.pps_by_id[pps.pic_parameter_set_id] = pps

    # ---- one picture ----
    def _picture_jobs(self, picture: _Picture, timestamp: int) -> list[Job]:
        first = picture.slices[0].header
        pps = self.pps_by_id[first.pic_parameter_set_id]
        sps = self.sps_by_id[pps.seq_parameter_set_id]
        self._check_supported(first, sps, pps)
        top, bottom = self.poc.compute(first, sps)
        dpb_entries = self.dpb.entries_for(first, sps)
        controls = dict(self._parameter_set_controls(sps, pps))
        controls[uapi.V4L2_CID_STATELESS_H264_DECODE_PARAMS] = \
            decode_params_control(first, top, bottom, dpb_entries)
        if self.decode_mode == FRAME_BASED:
            jobs = [self._frame_job(picture, timestamp, controls)]
        else:
            jobs = self._slice_jobs(picture, timestamp, controls, sps, min(top, bottom))
        self._in_flight_refs[timestamp] = {entry.timestamp for entry in dpb_entries}
        shown = self.dpb.add(CurrentPicture(first, timestamp, top, bottom), sps)
        jobs[-1].display = shown
        self.pictures += 1
        return jobs

    @staticmethod
    def _check_supported(first: SliceHeader, sps: Sps, pps: Pps) -> None:
        if first.field_pic_flag:
            raise UnsupportedError("interlaced H.264 (field pictures) is not supported")
        if pps.num_slice_groups_minus1:
            raise UnsupportedError("H.264 slice groups (FMO) have no V4L2 controls")
        if sps.bit_depth_luma_minus8 or sps.chroma_format_idc != 1:
            raise UnsupportedError("only 8-bit 4:2:0 H.264 is supported")

    def _payload(self, nal: bytes) -> bytes:
        return START_CODE + nal if self.start_code == ANNEX_B else nal

    def _frame_job(self, picture: _Picture, timestamp: int, controls: dict) -> Job:
        if self.start_code == NO_START_CODE and len(picture.slices) > 1:
            raise UnsupportedError(
                f"a picture of {len(picture.slices)} slices cannot be sent frame-based without "
                f"start codes (nothing would delimit the slices): use slice-based decoding")
        data = b"".join(self._payload(s.nal) for s in picture.slices)
        return Job(data, timestamp, controls, display=[])

    def _slice_jobs(self, picture: _Picture, timestamp: int, controls: dict, sps: Sps,
                    poc: int) -> list[Job]:
        jobs = []
        last = len(picture.slices) - 1
        for n, piece in enumerate(picture.slices):
            sh = piece.header
            slice_controls = dict(controls)
            lists = self.dpb.ref_pic_lists(sh, sps, poc)
            slice_controls[uapi.V4L2_CID_STATELESS_H264_SLICE_PARAMS] = slice_params_control(sh, lists)
            if sh.pred_weight_table is not None:
                slice_controls[uapi.V4L2_CID_STATELESS_H264_PRED_WEIGHTS] = \
                    pred_weights_control(sh.pred_weight_table)
            jobs.append(Job(self._payload(piece.nal), timestamp, slice_controls,
                            hold=n < last, display=[]))
        return jobs
