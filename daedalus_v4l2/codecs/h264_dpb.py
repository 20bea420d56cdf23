"""The H.264 decoding process a stateless client must mirror: POC, DPB, reference lists.

A stateless device decodes one picture per request; the client keeps the
state that crosses pictures (H.264 clause 8.2):

* :class:`PocState` computes picture order counts (8.2.1, types 0, 1, 2),
  which give display order and go into ``v4l2_ctrl_h264_decode_params``.
* :class:`Dpb` models the decoded picture buffer: reference marking by
  sliding window or memory management control operations (8.2.5), the
  reference entries each request names by CAPTURE timestamp, the initial and
  modified reference picture lists (8.2.4) for slice-based decoding, and the
  "bumping" output process (C.4.5.3) that says when a picture is displayed.
  Which CAPTURE buffers it still holds is what the client must not queue
  again yet.

Frames only: field pictures (PAFF) are refused by the client before they get here.
"""
from __future__ import annotations

from dataclasses import dataclass

from daedalus_v4l2.codecs.h264 import SLICE_B, SliceHeader, Sps
from daedalus_v4l2.codecs.h264_controls import DpbEntry
from daedalus_v4l2.errors import BitstreamError

# Table A-1, MaxDpbMbs by level_idc (level 1b coded as 9 or as 11 + constraint_set3).
_MAX_DPB_MBS = {9: 396, 10: 396, 11: 900, 12: 2376, 13: 2376, 20: 2376, 21: 4752, 22: 8100,
                30: 8100, 31: 18000, 32: 20480, 40: 32768, 41: 32768, 42: 34816, 50: 110400,
                51: 184320, 52: 184320}
MAX_DPB_FRAMES = 16


def dpb_capacity(sps: Sps) -> int:
    """How many frames the DPB holds: max_dec_frame_buffering, or what the level allows."""
    if sps.max_dec_frame_buffering is not None:
        return max(sps.max_dec_frame_buffering, sps.max_num_ref_frames, 1)
    mbs = _MAX_DPB_MBS.get(sps.level_idc, 696320)
    frames = mbs // (sps.width_mbs * sps.height_mbs)
    return max(min(frames, MAX_DPB_FRAMES), sps.max_num_ref_frames, 1)


# ====================================================================
# Picture order count (8.2.1)
# ====================================================================

class PocState:
    """The POC decoding process; :meth:`compute` once per picture, in decode order."""

    def __init__(self) -> None:
        self.prev_msb = 0            # of the previous reference picture (type 0)
        self.prev_lsb = 0
        self.prev_frame_num = 0      # of the previous picture (types 1, 2)
        self.prev_frame_num_offset = 0

    def compute(self, sh: SliceHeader, sps: Sps) -> tuple[int, int]:
        """(TopFieldOrderCnt, BottomFieldOrderCnt) of the picture ``sh`` starts,
        and the state moved past it."""
        kind = sps.pic_order_cnt_type
        if kind == 0:
            top, bottom = self._type0(sh, sps)
        else:
            offset = self._frame_num_offset(sh, sps)
            top, bottom = (self._type1(sh, sps, offset) if kind == 1
                           else self._type2(sh, offset))
            self.prev_frame_num_offset = offset
            self.prev_frame_num = sh.frame_num
        if sh.has_mmco5:
            top, bottom = self._after_mmco5(top, bottom)
        return top, bottom

    def _type0(self, sh: SliceHeader, sps: Sps) -> tuple[int, int]:
        if sh.idr:
            self.prev_msb = self.prev_lsb = 0
        max_lsb, lsb = sps.max_pic_order_cnt_lsb, sh.pic_order_cnt_lsb
        if lsb < self.prev_lsb and self.prev_lsb - lsb >= max_lsb // 2:
            msb = self.prev_msb + max_lsb
        elif lsb > self.prev_lsb and lsb - self.prev_lsb > max_lsb // 2:
            msb = self.prev_msb - max_lsb
        else:
            msb = self.prev_msb
        top = msb + lsb
        if sh.nal_ref_idc:
            self.prev_msb, self.prev_lsb = msb, lsb
        return top, top + sh.delta_pic_order_cnt_bottom

    def _frame_num_offset(self, sh: SliceHeader, sps: Sps) -> int:
        if sh.idr:
            return 0
        if self.prev_frame_num > sh.frame_num:
            return self.prev_frame_num_offset + sps.max_frame_num
        return self.prev_frame_num_offset

    @staticmethod
    def _type1(sh: SliceHeader, sps: Sps, frame_num_offset: int) -> tuple[int, int]:
        cycle = sps.offset_for_ref_frame
        abs_frame_num = frame_num_offset + sh.frame_num if cycle else 0
        if sh.nal_ref_idc == 0 and abs_frame_num > 0:
            abs_frame_num -= 1
        expected = 0
        if abs_frame_num > 0:
            cycle_count, in_cycle = divmod(abs_frame_num - 1, len(cycle))
            expected = cycle_count * sum(cycle) + sum(cycle[:in_cycle + 1])
        if sh.nal_ref_idc == 0:
            expected += sps.offset_for_non_ref_pic
        top = expected + sh.delta_pic_order_cnt[0]
        return top, top + sps.offset_for_top_to_bottom_field + sh.delta_pic_order_cnt[1]

    @staticmethod
    def _type2(sh: SliceHeader, frame_num_offset: int) -> tuple[int, int]:
        if sh.idr:
            poc = 0
        else:
            poc = 2 * (frame_num_offset + sh.frame_num) - (0 if sh.nal_ref_idc else 1)
        return poc, poc

    def _after_mmco5(self, top: int, bottom: int) -> tuple[int, int]:
        """8.2.1: after memory_management_control_operation 5 the picture counts
        as POC 0 and frame_num 0 for the pictures that follow."""
        temp = min(top, bottom)
        top, bottom = top - temp, bottom - temp
        self.prev_msb, self.prev_lsb = 0, top
        self.prev_frame_num_offset = self.prev_frame_num = 0
        return top, bottom


# ====================================================================
# The decoded picture buffer (8.2.4, 8.2.5, C.4)
# ====================================================================

@dataclass
class Frame:
    timestamp: int | None         # None: a "non-existing" frame of a frame_num gap
    frame_num: int
    top_poc: int
    bottom_poc: int
    reference: str | None = None  # "short", "long" or None
    long_term_frame_idx: int = 0
    waiting_for_output: bool = False
    frame_num_wrap: int = 0

    @property
    def poc(self) -> int:
        return min(self.top_poc, self.bottom_poc)


@dataclass
class CurrentPicture:
    """What the DPB needs to know of the picture being decoded."""
    header: SliceHeader           # its first slice
    timestamp: int
    top_poc: int
    bottom_poc: int

    @property
    def poc(self) -> int:
        return min(self.top_poc, self.bottom_poc)


class Dpb:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.max_long_term_frame_idx: int | None = None  # None: "no long-term frame indices"
        self.prev_ref_frame_num = 0

    # ---- what the current picture sees ----
    def references(self) -> list[Frame]:
        """Reference frames with a CAPTURE buffer, in DPB order."""
        return [f for f in self.frames if f.reference and f.timestamp is not None]

    def entries_for(self, sh: SliceHeader, sps: Sps) -> list[DpbEntry]:
        """``v4l2_ctrl_h264_decode_params.dpb`` for the picture ``sh`` starts."""
        self._update_frame_num_wrap(sh, sps)
        return [DpbEntry(f.timestamp, f.long_term_frame_idx if f.reference == "long" else f.frame_num_wrap,
                         f.long_term_frame_idx if f.reference == "long" else f.frame_num,
                         f.top_poc, f.bottom_poc, f.reference == "long")
                for f in self.references()]

    def held_timestamps(self) -> set[int]:
        """CAPTURE buffers the DPB still needs: references and pictures not displayed yet."""
        return {f.timestamp for f in self.frames
                if f.timestamp is not None and (f.reference or f.waiting_for_output)}

    def _update_frame_num_wrap(self, sh: SliceHeader, sps: Sps) -> None:
        """8.2.4.1: FrameNumWrap (= PicNum for frames) relative to the current frame_num."""
        for f in self.frames:
            if f.reference == "short":
                f.frame_num_wrap = f.frame_num - (sps.max_frame_num if f.frame_num > sh.frame_num else 0)

    # ---- reference picture lists (8.2.4.2, 8.2.4.3) ----
    def ref_pic_lists(self, sh: SliceHeader, sps: Sps, poc: int) -> tuple[list[int], list[int]]:
        """RefPicList0/1 of a slice as indices into :meth:`entries_for`'s array."""
        self._update_frame_num_wrap(sh, sps)
        refs = self.references()
        index = {id(f): i for i, f in enumerate(refs)}
        if sh.slice_type == SLICE_B:
            initial = self._initial_b_lists(refs, poc)
        elif sh.slice_type in (0, 3):
            initial = (self._initial_p_list(refs), [])
        else:
            return [], []
        counts = (sh.num_ref_idx_l0_active_minus1 + 1, sh.num_ref_idx_l1_active_minus1 + 1)
        lists = []
        for n, (frames, count) in enumerate(zip(initial, counts)):
            if n == 1 and sh.slice_type != SLICE_B:
                lists.append([])
                continue
            frames = self._modified(frames[:count], count, sh.ref_pic_list_modifications[n], sh, sps, refs)
            lists.append([index[id(f)] for f in frames if f is not None])
        return lists[0], lists[1]

    @staticmethod
    def _initial_p_list(refs: list[Frame]) -> list[Frame]:
        short = sorted((f for f in refs if f.reference == "short"), key=lambda f: -f.frame_num_wrap)
        long = sorted((f for f in refs if f.reference == "long"), key=lambda f: f.long_term_frame_idx)
        return short + long

    @staticmethod
    def _initial_b_lists(refs: list[Frame], poc: int) -> tuple[list[Frame], list[Frame]]:
        short = [f for f in refs if f.reference == "short"]
        before = sorted((f for f in short if f.poc < poc), key=lambda f: -f.poc)
        after = sorted((f for f in short if f.poc > poc), key=lambda f: f.poc)
        long = sorted((f for f in refs if f.reference == "long"), key=lambda f: f.long_term_frame_idx)
        list0, list1 = before + after + long, after + before + long
        if len(list1) > 1 and list0 == list1:
            list1[0], list1[1] = list1[1], list1[0]
        return list0, list1

    @staticmethod
    def _modified(frames, count, modifications, sh: SliceHeader, sps: Sps, refs) -> list:
        """8.2.4.3 for frames: each modification puts a picture at the next index."""
        frames = list(frames) + [None] * (count - len(frames))
        max_pic_num, pic_num_pred = sps.max_frame_num, sh.frame_num
        for ref_idx, mod in enumerate(modifications):
            if mod.idc in (0, 1):
                delta = mod.value + 1
                no_wrap = pic_num_pred - delta if mod.idc == 0 else pic_num_pred + delta
                no_wrap %= max_pic_num
                pic_num_pred = no_wrap
                pic_num = no_wrap - max_pic_num if no_wrap > sh.frame_num else no_wrap
                target = next((f for f in refs if f.reference == "short"
                               and f.frame_num_wrap == pic_num), None)
            else:
                target = next((f for f in refs if f.reference == "long"
                               and f.long_term_frame_idx == mod.value), None)
            if target is None:
                raise BitstreamError("reference list modification names a picture not in the DPB")
            if ref_idx >= count:
                raise BitstreamError("more reference list modifications than active references")
            rest = [f for f in frames[ref_idx:] if f is not target]
            frames = frames[:ref_idx] + [target] + rest
            frames = frames[:count]
        return frames

    # ---- after decoding: marking (8.2.5) and output (C.4.5.3) ----
    def add(self, pic: CurrentPicture, sps: Sps) -> list[int]:
        """Mark references after ``pic`` and store it; returns the timestamps
        to display now, in display order."""
        sh = pic.header
        shown: list[int] = []
        if sh.idr or sh.has_mmco5:
            shown += self._output_all()
        if sh.idr:
            self._mark_idr(sh)
            reference = "long" if sh.long_term_reference_flag else "short"
        else:
            if sh.nal_ref_idc:
                self._fill_frame_num_gap(sh, sps)
            reference = self._mark_non_idr(sh, sps) if sh.nal_ref_idc else None
        self._remove_unneeded()
        frame = Frame(pic.timestamp, 0 if sh.has_mmco5 else sh.frame_num, pic.top_poc,
                      pic.bottom_poc, reference, waiting_for_output=True)
        if reference == "long":
            frame.long_term_frame_idx = self._current_long_term_idx(sh)
        self.frames.append(frame)
        if sh.nal_ref_idc:
            self.prev_ref_frame_num = frame.frame_num
        return shown + self._bump(sps)

    def flush(self) -> list[int]:
        """End of stream: every picture still waiting, in display order."""
        shown = self._output_all()
        self.frames = []
        return shown

    def _mark_idr(self, sh: SliceHeader) -> None:
        for f in self.frames:
            f.reference = None
        self.max_long_term_frame_idx = 0 if sh.long_term_reference_flag else None

    @staticmethod
    def _current_long_term_idx(sh: SliceHeader) -> int:
        for mmco in sh.mmcos:
            if mmco.op == 6:
                return mmco.long_term_frame_idx
        return 0

    def _mark_non_idr(self, sh: SliceHeader, sps: Sps) -> str:
        """The current (reference) picture's marking: "short" or "long"."""
        if not sh.adaptive_ref_pic_marking_mode_flag:
            self._sliding_window(sps)
            return "short"
        self._update_frame_num_wrap(sh, sps)
        current = "short"
        for mmco in sh.mmcos:
            if mmco.op == 6:
                self._drop_long_term_idx(mmco.long_term_frame_idx)
                current = "long"
            else:
                self._apply_mmco(mmco, sh)
        refs = [f for f in self.frames if f.reference]
        if len(refs) + 1 > max(sps.max_num_ref_frames, 1):
            raise BitstreamError(f"{len(refs) + 1} reference frames after marking, "
                                 f"max_num_ref_frames is {sps.max_num_ref_frames}")
        return current

    def _sliding_window(self, sps: Sps) -> None:
        """8.2.5.3: the oldest short-term reference goes when the DPB's references are full."""
        refs = [f for f in self.frames if f.reference]
        if len(refs) >= max(sps.max_num_ref_frames, 1):
            short = [f for f in refs if f.reference == "short"]
            if not short:
                raise BitstreamError("DPB full of long-term references: no room for the picture")
            min(short, key=lambda f: f.frame_num_wrap).reference = None

    def _apply_mmco(self, mmco, sh: SliceHeader) -> None:
        op = mmco.op
        if op in (1, 3):
            pic_num = sh.frame_num - (mmco.difference_of_pic_nums_minus1 + 1)
            frame = next((f for f in self.frames if f.reference == "short"
                          and f.frame_num_wrap == pic_num), None)
            if frame is None:
                raise BitstreamError(f"MMCO {op} names short-term picture {pic_num}, not in the DPB")
            if op == 1:
                frame.reference = None
            else:
                self._drop_long_term_idx(mmco.long_term_frame_idx)
                frame.reference, frame.long_term_frame_idx = "long", mmco.long_term_frame_idx
        elif op == 2:
            for f in self.frames:
                if f.reference == "long" and f.long_term_frame_idx == mmco.long_term_pic_num:
                    f.reference = None
        elif op == 4:
            limit = mmco.max_long_term_frame_idx_plus1 - 1
            self.max_long_term_frame_idx = None if limit < 0 else limit
            for f in self.frames:
                if f.reference == "long" and (limit < 0 or f.long_term_frame_idx > limit):
                    f.reference = None
        elif op == 5:
            for f in self.frames:
                f.reference = None
            self.max_long_term_frame_idx = None

    def _drop_long_term_idx(self, idx: int) -> None:
        for f in self.frames:
            if f.reference == "long" and f.long_term_frame_idx == idx:
                f.reference = None

    def _fill_frame_num_gap(self, sh: SliceHeader, sps: Sps) -> None:
        """8.2.5.2: frame_nums skipped (when allowed) become "non-existing" short-term frames."""
        expected = (self.prev_ref_frame_num + 1) % sps.max_frame_num
        if sh.frame_num in (self.prev_ref_frame_num, expected) or not self.frames:
            return
        if not sps.gaps_in_frame_num_value_allowed_flag:
            return  # an error or a lost picture; libavcodec conceals it, so do not invent frames
        frame_num = expected
        while frame_num != sh.frame_num:
            self._update_frame_num_wrap(SliceHeader(frame_num=frame_num), sps)
            self._sliding_window(sps)
            self.frames.append(Frame(None, frame_num, 0, 0, "short"))
            frame_num = (frame_num + 1) % sps.max_frame_num
        self._update_frame_num_wrap(sh, sps)

    def _remove_unneeded(self) -> None:
        self.frames = [f for f in self.frames if f.reference or f.waiting_for_output]

    def _output_all(self) -> list[int]:
        shown = []
        for f in sorted((f for f in self.frames if f.waiting_for_output), key=lambda f: f.poc):
            f.waiting_for_output = False
            shown.append(f.timestamp)
        self._remove_unneeded()
        return shown

    def _bump(self, sps: Sps) -> list[int]:
        """Display the lowest POC while more pictures wait than may be reordered,
        or the DPB holds more than it can."""
        capacity = dpb_capacity(sps)
        reorder = sps.max_num_reorder_frames if sps.max_num_reorder_frames is not None else capacity
        shown = []
        while True:
            waiting = [f for f in self.frames if f.waiting_for_output]
            if not waiting or (len(waiting) <= reorder and len(self.frames) <= capacity):
                return shown
            first = min(waiting, key=lambda f: f.poc)
            first.waiting_for_output = False
            shown.append(first.timestamp)
            self._remove_unneeded()
