"""The command line's option types: a bad value is a usage error naming the
option (exit status 2), before any work."""
from __future__ import annotations

import pytest

from daedalus_v4l2 import argtypes, cli
from daedalus_v4l2.backends.sim import formats


def test_the_sizes_are_the_simulated_devices():
    assert (argtypes.MIN_SIZE, argtypes.MAX_SIZE) == (formats.MIN_SIZE, formats.MAX_SIZE)


@pytest.mark.parametrize("argv, says", [
    (["demo", "--fps", "-5"], "argument --fps: must be a number, 0 or more, got '-5'"),
    (["demo", "--fps", "nan"], "argument --fps: must be a number, 0 or more, got 'nan'"),
    (["demo", "--fps", "fast"], "argument --fps: expected a number, got 'fast'"),
    (["demo", "--frames", "0"], "argument --frames: must be at least 1, got 0"),
    (["demo", "--size", "8x8"], "argument --size: sizes go from 16x16 to 4096x4096, got '8x8'"),
    (["decode", "in.ivf", "-o", "out", "--depth", "two"],
     "argument --depth: expected a whole number, got 'two'"),
    (["daemon", "--wait", "-1"], "argument --wait: must be a number, 0 or more, got '-1'"),
    (["daemon", "--wait", "inf"], "argument --wait: must be a number, 0 or more, got 'inf'"),
])
def test_a_bad_value_is_a_usage_error(argv, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_good_values_come_out_typed():
    args = cli.build_parser().parse_args(["demo", "--fps", "0", "--size", "64X48", "--frames", "3"])
    assert (args.fps, args.size, args.frames) == (0.0, (64, 48), 3)
    assert cli.build_parser().parse_args(["daemon", "--wait", "2.5"]).wait == 2.5


def test_daemon_writes_behind_unless_told_not_to():
    parse = cli.build_parser().parse_args
    assert parse(["daemon"]).write_behind is True
    assert parse(["daemon", "--no-write-behind"]).write_behind is False
