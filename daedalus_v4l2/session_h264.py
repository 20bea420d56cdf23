"""The H.264 decoder session: slices and control structs in, one picture per request out.

A stateless H.264 request carries slice NAL units only; the SPS and PPS come
as ``v4l2_ctrl_h264_sps``/``_pps``/``_scaling_matrix`` controls.  The session
rebuilds those NAL units (:mod:`.codecs.h264_rebuild`) and gives libavcodec,
per picture, the rebuilt parameter sets when they changed, then the slices
(start codes added when the device runs without them).

Decode order.  libavcodec's H.264 decoder hands pictures out in display
order, holding back as many as the SPS allows to be reordered and dropping
a picture whose POC is below the last one it output.  A stateless decoder
must fill each request's CAPTURE buffer with *that* request's picture, and a
client that waits for it before sending the next request must not stall.
So the rebuilt SPS says ``max_num_reorder_frames = 16``: libavcodec never
outputs on its own (its display-order bookkeeping, ``next_outputed_poc``, is
never touched, so nothing is dropped as "out of order"), and right after each
picture the session feeds a packet holding only an end-of-sequence NAL unit.
For such a packet (no current picture, last NAL unit end of sequence)
libavcodec's ``h264_decode_frame`` hands out the next delayed picture
(``send_next_delayed_frame``) without draining or flushing anything: with one
picture delayed, that is the one just decoded.  References stay intact (the
decoder keeps its DPB; the end-of-sequence NAL unit itself is ignored by
``decode_nal_units``).  Decoded samples do not depend on any of this.

(A recovery point SEI in front of every picture, so that libavcodec would
mark each picture a key frame and reset its output POC, does not work with
the libavcodec this runs on: only IDR pictures get the key flag, so B
pictures are dropped as out of order.  Tested; see tests/test_h264_session.py.)

Slice-based decoding: requests flagged ``DECODE_HOLD_CAPTURE`` carry one
slice each of a picture whose last slice comes in the request without it;
the session collects them and decodes the picture with that last request.
"""
from __future__ import annotations

import logging
import struct

from . import proto
from .codecs import h264, h264_native
from .codecs.h264_controls import pps_from_control, scaling_matrix_from_control, sps_from_control
from .codecs.h264_rebuild import end_of_sequence, rebuild_pps, rebuild_sps
from .errors import BitstreamError, UnsupportedError
from .session import DecoderSession, MapCapture, Pending, check_size, error_response
from .v4l2 import uapi

log = logging.getLogger(__name__)

FRAME_BASED = uapi.V4L2_STATELESS_H264_DECODE_MODE_FRAME_BASED
ANNEX_B = uapi.V4L2_STATELESS_H264_START_CODE_ANNEX_B
END_OF_SEQUENCE = h264.annexb([end_of_sequence()])


def _menu(controls: dict[int, bytes], cid: int, default: int) -> int:
    data = controls.get(cid)
    return struct.unpack("<i", data[:4])[0] if data and len(data) >= 4 else default


class H264Session(DecoderSession):
    codec_name = "h264"

    def __init__(self, stream_id: int, **kwargs) -> None:
        super().__init__(stream_id, **kwargs)
        self._parameter_sets: dict[tuple[int, int], bytes] = {}  # (nal type, id) -> NAL sent
        self._parameter_set_key: tuple | None = None  # the controls those NAL units came from
        self._held_slices: list[bytes] = []
        self._sps_read: tuple[bytes, h264.Sps] | None = None  # the last SPS control, read
        self._held_request: proto.DecodeRequest | None = None

    # ---- requests ----
    def decode(self, req: proto.DecodeRequest, map_capture: MapCapture) -> list[proto.FrameResponse]:
        responses = []
        if req.flags & proto.DECODE_FIRST_SLICE and self._held_slices:
            responses += self._decode_orphaned_slices(map_capture)
        if req.flags & proto.DECODE_HOLD_CAPTURE:
            return responses + [self._hold(req)]
        return responses + super().decode(req, map_capture)

    def drain(self, map_capture: MapCapture) -> list[proto.FrameResponse]:
        """FLUSH: slices still held (the last one never came) make a picture of their own."""
        responses = self._decode_orphaned_slices(map_capture) if self._held_slices else []
        return responses + super().drain(map_capture)

    def _hold(self, req: proto.DecodeRequest) -> proto.FrameResponse:
        try:
            self._held_slices += self._slices(req)
        except BitstreamError as exc:
            log.warning("stream %d cookie %d: %s", req.stream_id, req.cookie, exc)
            return error_response(req, str(exc))
        self._held_request = req
        return proto.FrameResponse(req.stream_id, req.cookie, proto.FRAME_SRC_CONSUMED)

    def _decode_orphaned_slices(self, map_capture: MapCapture) -> list[proto.FrameResponse]:
        """Decode what was held, for libavcodec's references and, if the kernel still
        has it in flight (FLUSH took its hold away), for the last held request."""
        req, slices = self._held_request, self._held_slices
        self._held_slices, self._held_request = [], None
        log.warning("stream %d: %d held slice(s) without their picture's last slice",
                    self.stream_id, len(slices))
        self._pending[req.cookie] = Pending(req, consumed=True)
        try:
            packets = [self._parameter_set_nals(req) + h264.annexb(slices), END_OF_SEQUENCE]
            responses = []
            for data in packets:
                responses += self._deliver(self._feed(data, req.cookie), map_capture)
            return responses
        except (BitstreamError, UnsupportedError, ValueError) as exc:
            log.warning("stream %d: held slices failed: %s", self.stream_id, exc)
            return []
        finally:
            self._pending.pop(req.cookie, None)

    def _noop_packet(self) -> bytes | None:
        """An end of sequence alone hands out the next delayed picture, and changes
        nothing else (see above)."""
        return END_OF_SEQUENCE

    def _packets(self, req: proto.DecodeRequest) -> list[bytes]:
        if uapi.V4L2_CID_STATELESS_H264_SPS in req.controls:
            sps = self._sps(req.controls[uapi.V4L2_CID_STATELESS_H264_SPS])
            check_size("the H.264 SPS control", 16 * sps.width_mbs, 16 * sps.height_mbs, req)
        slices = self._held_slices + self._slices(req)
        self._held_slices, self._held_request = [], None
        return [self._parameter_set_nals(req) + h264.annexb(slices), END_OF_SEQUENCE]

    def _sps(self, control: bytes) -> h264.Sps:
        """An SPS control, read; for the size check and the rebuilt SPS alike.  A
        stream's requests carry the same SPS control, almost always: that one is not
        read again (nothing changes an Sps once read)."""
        if self._sps_read is None or control != self._sps_read[0]:
            self._sps_read = (bytes(control), sps_from_control(control))
        return self._sps_read[1]

    # ---- bitstream ----
    @staticmethod
    def _slices(req: proto.DecodeRequest) -> list[bytes]:
        data = bytes(req.bitstream)
        start_code = _menu(req.controls, uapi.V4L2_CID_STATELESS_H264_START_CODE, ANNEX_B)
        nals = h264_native.split_annexb(data) if start_code == ANNEX_B else ([data] if data else [])
        slices = [nal for nal in nals if h264.nal_header(nal).nal_unit_type in h264.VCL_NAL_TYPES]
        if not slices:
            raise BitstreamError(f"no coded slice in the {len(data)}-byte OUTPUT buffer"
                                 + ("" if start_code == ANNEX_B else " (start code mode NONE)"))
        return slices

    def _parameter_set_nals(self, req: proto.DecodeRequest) -> bytes:
        """Annex B SPS and PPS rebuilt from the request's controls, if libavcodec
        has not had exactly these yet."""
        controls = req.controls
        # The same controls as the last request (every request of a stream, almost
        # always): libavcodec has these parameter sets already, nothing to rebuild.
        key = (controls.get(uapi.V4L2_CID_STATELESS_H264_SPS),
               controls.get(uapi.V4L2_CID_STATELESS_H264_PPS),
               controls.get(uapi.V4L2_CID_STATELESS_H264_SCALING_MATRIX),
               req.coded_width, req.coded_height)
        if key == self._parameter_set_key and key[0] is not None and key[1] is not None:
            return b""
        try:
            sps = self._sps(controls[uapi.V4L2_CID_STATELESS_H264_SPS])
            pps = pps_from_control(controls[uapi.V4L2_CID_STATELESS_H264_PPS])
        except KeyError as exc:
            raise BitstreamError(f"request without control 0x{exc.args[0]:x}") from None
        if pps.seq_parameter_set_id != sps.seq_parameter_set_id:
            raise BitstreamError(f"PPS {pps.pic_parameter_set_id} names SPS {pps.seq_parameter_set_id}, "
                                 f"the SPS control is SPS {sps.seq_parameter_set_id}")
        scaling = None
        if pps.pic_scaling_matrix_present_flag:
            matrix = controls.get(uapi.V4L2_CID_STATELESS_H264_SCALING_MATRIX)
            if matrix is None:
                raise BitstreamError("PPS says scaling matrix present, no scaling matrix control")
            scaling = scaling_matrix_from_control(matrix)
        nals = [((h264.NAL_SPS, sps.seq_parameter_set_id),
                 rebuild_sps(sps, (req.coded_width, req.coded_height))),
                ((h264.NAL_PPS, pps.pic_parameter_set_id), rebuild_pps(pps, sps, scaling))]
        self._parameter_set_key = key
        if all(self._parameter_sets.get(id_) == nal for id_, nal in nals):
            return b""
        if self._parameter_sets.get(nals[0][0]) != nals[0][1]:
            # a changed SPS invalidates every PPS libavcodec had: they are sent again as used
            self._parameter_sets.clear()
        self._parameter_sets.update(nals)
        return h264.annexb(nal for _, nal in nals)
