"""SimContext: one open of the video node (a v4l2_m2m_ctx plus the driver's state)."""
from __future__ import annotations

from ... import proto
from ...v4l2 import uapi
from . import formats
from .vb2 import Vb2Queue


class SimContext:
    def __init__(self, kernel, ctx_id: int) -> None:
        self.kernel = kernel
        self.id = ctx_id
        self.out_q = Vb2Queue(ctx_id, uapi.V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE)
        self.cap_q = Vb2Queue(ctx_id, uapi.V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE)
        self.out_q.ctx = self.cap_q.ctx = self
        self.out_fmt = formats.coded_format(0, formats.DEFAULT_WIDTH, formats.DEFAULT_HEIGHT)
        self.cap_fmt = formats.decoded_format(uapi.V4L2_PIX_FMT_NV12, self.out_fmt.width,
                                              self.out_fmt.height)
        self.session_open = False   # STREAM_OPEN sent to the current daemon
        self.held = None            # the InflightEntry whose dst is held for more slices
        self.flush_pending = False  # FLUSH arrived while a HOLD job ran: do not hold its dst
        self.frame = 0              # pictures started (FIRST_SLICE), for logs and the TUI
        # Current control values, as bytes (menus as s32); unset ones read as defaults.
        self.cur_controls: dict[int, bytes] = {}
        self.subscribed: set[int] = set()
        self.closed = False

    def __repr__(self) -> str:
        return f"<SimContext {self.id}>"

    @property
    def codec(self) -> int:
        return formats.CODED[self.out_fmt.pixelformat][0]

    def queue(self, buf_type: int) -> Vb2Queue | None:
        if buf_type == self.out_q.type:
            return self.out_q
        if buf_type == self.cap_q.type:
            return self.cap_q
        return None

    def control(self, cid: int) -> bytes:
        return self.cur_controls.get(cid) or formats.default_value(cid)

    def apply_request(self, request) -> None:
        """v4l2_ctrl_request_setup: what the request set becomes current; the rest
        keeps its value from earlier requests."""
        if request is not None:
            self.cur_controls.update(request.controls)

    def decode_controls(self) -> dict[int, bytes]:
        """Every control of the codec with its current value: what a DECODE carries."""
        return {cid: self.control(cid) for cid in formats.codec_controls(self.codec)}

    def stream_open(self) -> proto.StreamOpen:
        return proto.StreamOpen(self.id, self.codec, self.out_fmt.pixelformat,
                                self.out_fmt.width, self.out_fmt.height,
                                self.cap_fmt.pixelformat)
