"""Textual view of the decoder's queues and in-flight buffers (``daedalus-v4l2 ... --tui``)."""
