"""The H.264 client's per-picture header work in C (``native/h264_headers.c``,
built into :mod:`daedalus_v4l2._native`).

Every picture the client reads its slices' headers and cuts its packet at the
start codes, and the daemon cuts the request's OUTPUT buffer again.  In Python
(:func:`h264.parse_slice_header <daedalus_v4l2.codecs.h264.parse_slice_header>`)
a slice header took some 150 interpreter calls and a copy of the whole slice
without its emulation prevention bytes; in C it reads the escaped NAL unit as
it is, in a microsecond.  The Python reader stays: it is the oracle that
``tests/test_h264_native.py`` holds the C to, field for field and refusal for
refusal, and what reads the parameter sets (once a stream).
"""
from __future__ import annotations

from ..errors import BitstreamError
from . import native_lib
from .h264 import (
    LastPair, Mmco, Pps, PredWeightTable, RefPicListModification, SliceHeader, Sps)
from .native_lib import ERROR_BYTES

ffi, lib = native_lib.load("dv_h264_parse_slice_header", "H.264 header code")
# NAL units a packet usually has room for (a picture's slices, maybe SPS, PPS, SEI)
_UNITS = 32


def _leading_long_longs(struct: str) -> tuple[str, ...]:
    """The names of the ``long long`` fields a struct starts with."""
    names = []
    for name, field in ffi.typeof(struct).fields:
        if field.type is not ffi.typeof("long long"):
            break
        names.append(name)
    return tuple(names)


# SliceHeader's plain fields: the C struct starts with them, so that one unpack reads them all
_SCALAR_FIELDS = _leading_long_longs("dv_h264_slice_header")
_FLAG_FIELDS = frozenset(name for name in _SCALAR_FIELDS if name.endswith("_flag"))


def split_annexb(data) -> list[bytes]:
    """What :func:`h264.split_annexb <daedalus_v4l2.codecs.h264.split_annexb>` returns,
    the start codes found in C."""
    data = bytes(data)
    bounds = ffi.new("size_t[]", 2 * _UNITS)
    count = lib.dv_h264_split_annexb(data, len(data), bounds, _UNITS)
    if count > _UNITS:
        bounds = ffi.new("size_t[]", 2 * count)
        lib.dv_h264_split_annexb(data, len(data), bounds, count)
    return [data[bounds[2 * n]:bounds[2 * n + 1]] for n in range(count)]


def parameters(sps: Sps, pps: Pps):
    """The ``dv_h264_parameters *`` a slice header naming ``pps`` is read with."""
    p = ffi.new("dv_h264_parameters *")
    p.log2_max_frame_num = sps.log2_max_frame_num_minus4 + 4
    p.separate_colour_plane_flag = sps.separate_colour_plane_flag
    p.frame_mbs_only_flag = sps.frame_mbs_only_flag
    p.pic_order_cnt_type = sps.pic_order_cnt_type
    p.log2_max_pic_order_cnt_lsb = sps.log2_max_pic_order_cnt_lsb_minus4 + 4
    p.delta_pic_order_always_zero_flag = sps.delta_pic_order_always_zero_flag
    p.chroma_array_type = sps.chroma_array_type
    p.pic_size_in_mbs = sps.width_mbs * sps.height_mbs
    p.pic_size_in_map_units = sps.width_mbs * (sps.pic_height_in_map_units_minus1 + 1)
    for name in ("bottom_field_pic_order_in_frame_present_flag", "redundant_pic_cnt_present_flag",
                 "num_ref_idx_l0_default_active_minus1", "num_ref_idx_l1_default_active_minus1",
                 "weighted_pred_flag", "weighted_bipred_idc", "entropy_coding_mode_flag",
                 "deblocking_filter_control_present_flag", "num_slice_groups_minus1",
                 "slice_group_map_type", "slice_group_change_rate_minus1"):
        setattr(p, name, getattr(pps, name))
    return p


class SliceHeaderReader:
    """Reads slice headers in C against a client's parameter sets, keeping the
    C form of the (SPS, PPS) pair last used."""

    def __init__(self) -> None:
        self._error = native_lib.error_buffer(ffi)
        self._pps_id = ffi.new("int *")
        self._header = ffi.new("dv_h264_slice_header *")
        self._parameters = LastPair(parameters)

    def read(self, nal: bytes, sps_by_id: dict[int, Sps], pps_by_id: dict[int, Pps]) -> SliceHeader:
        """What :func:`h264.parse_slice_header <daedalus_v4l2.codecs.h264.parse_slice_header>`
        returns for ``nal``, and the same refusals."""
        nal = bytes(nal)
        if lib.dv_h264_slice_pps_id(nal, len(nal), self._pps_id, self._error, ERROR_BYTES):
            raise BitstreamError(self._message())
        pps_id = self._pps_id[0]
        pps = pps_by_id.get(pps_id)
        if pps is None:
            raise BitstreamError(f"slice refers to unknown PPS {pps_id}")
        sps = sps_by_id.get(pps.seq_parameter_set_id)
        if sps is None:
            raise BitstreamError(f"PPS {pps.pic_parameter_set_id} refers to unknown SPS")
        if lib.dv_h264_parse_slice_header(nal, len(nal), self._parameters(sps, pps),
                                          self._header, self._error, ERROR_BYTES):
            raise BitstreamError(self._message())
        return slice_header(self._header)

    def _message(self) -> str:
        return native_lib.message(ffi, self._error)


def slice_header(c) -> SliceHeader:
    """A :class:`~daedalus_v4l2.codecs.h264.SliceHeader` from a ``dv_h264_slice_header *``."""
    fields = dict(zip(_SCALAR_FIELDS, ffi.unpack(ffi.cast("long long *", c), len(_SCALAR_FIELDS))))
    for name in _FLAG_FIELDS:
        fields[name] = bool(fields[name])
    sh = SliceHeader(**fields, delta_pic_order_cnt=tuple(c.delta_pic_order_cnt))
    for lst, count in enumerate(c.num_modifications):
        if count:
            sh.ref_pic_list_modifications[lst].extend(
                RefPicListModification(m.idc, m.value) for m in c.modifications[lst][0:count])
    if c.has_pred_weight_table:
        sh.pred_weight_table = _pred_weight_table(c)
    if c.num_mmcos:
        sh.mmcos = [Mmco(m.op, m.difference_of_pic_nums_minus1, m.long_term_pic_num,
                         m.long_term_frame_idx, m.max_long_term_frame_idx_plus1)
                    for m in c.mmcos[0:c.num_mmcos]]
    return sh


def _pred_weight_table(c) -> PredWeightTable:
    table = PredWeightTable(c.luma_log2_weight_denom, c.chroma_log2_weight_denom)
    for lst, count in enumerate(c.pred_weight_count):
        # [ref][weight, offset] and [ref][cb, cr][weight, offset], flat
        luma = ffi.unpack(ffi.cast("int *", c.luma_weight[lst]), 2 * count)
        chroma = ffi.unpack(ffi.cast("int *", c.chroma_weight[lst]), 4 * count)
        table.luma[lst] = list(zip(luma[0::2], luma[1::2]))
        table.chroma[lst] = [((chroma[i], chroma[i + 1]), (chroma[i + 2], chroma[i + 3]))
                             for i in range(0, 4 * count, 4)]
    return table
