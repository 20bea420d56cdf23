"""daedalus-v4l2: a V4L2 stateless video decoder whose decoding runs in a userspace daemon."""
__version__ = "0.1.0"
