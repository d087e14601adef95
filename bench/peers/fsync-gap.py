#!/usr/bin/env python3
"""fsync cost against the idle time before it (issue 15, goal 1).

A sequential client makes every durable server fsync once per request, and
between two fsyncs lies the rest of the round trip. On a virtual disk the
flush can cost several times more after an idle gap than back to back; this
probe shows how much, in the directory given (default: the current one):

  bench/peers/fsync-gap.py [DIR] [--rounds N]

Each iteration sleeps (or spins) for a gap, writes either one 100-byte
record (a beanstalkd binlog `put`) or 8 WAL frames of 4,120 bytes (an errand
single-job commit on SQLite), then times the fsync alone. A cell is a
sustained run of one gap and one shape (a device that adapts to the
pattern sees a steady one), split into blocks that alternate with the other
cells', so a change in the disk's load moves every column alike; p50 and
mean in microseconds are printed per cell.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

GAPS_US = [0, 100, 300, 1000]
# fsyncs run, untimed, at the start of each block so that the device settles into the pattern.
WARMUP = 20
SHAPES = {"100 B record": [100], "8 WAL frames": [4120] * 8}


def main(argv):
    parser = argparse.ArgumentParser(description="fsync cost against the idle time before it")
    parser.add_argument("dir", nargs="?", default=".", help="where the scratch file goes")
    parser.add_argument("--rounds", type=int, default=600, help="fsyncs timed per cell")
    parser.add_argument("--blocks", type=int, default=6, help="blocks each cell's fsyncs are split into")
    opts = parser.parse_args(argv[1:])
    directory, rounds = opts.dir, opts.rounds
    fd, path = tempfile.mkstemp(prefix="fsync-gap.", dir=directory)
    try:
        size = 8 << 20
        os.pwrite(fd, b"\0" * size, 0)
        os.fsync(fd)
        cells = {(s, g, spin): [] for s in SHAPES for g in GAPS_US for spin in (False, True)
                 if g or not spin}
        offset = 0
        for _ in range(opts.blocks):
            for (shape, gap, spin), times in cells.items():
                for i in range(WARMUP + rounds // opts.blocks):
                    if spin:
                        until = time.perf_counter() + gap / 1e6
                        while time.perf_counter() < until:
                            pass
                    elif gap:
                        time.sleep(gap / 1e6)
                    for n in SHAPES[shape]:
                        os.pwrite(fd, b"f" * n, offset)
                        offset += n
                    if offset > size - 100_000:
                        offset = 0
                    started = time.perf_counter()
                    os.fsync(fd)
                    if i >= WARMUP:
                        times.append((time.perf_counter() - started) * 1e6)
        print(f"fsync after a gap, {rounds} each, in {os.path.abspath(directory)} (p50 / mean, µs)")
        print(f"{'write before it':14s} | " + " | ".join(
            f"{g} µs {'spin' if s else 'sleep'}" if g else "no gap"
            for (sh, g, s) in cells if sh == "100 B record"))
        for shape in SHAPES:
            row = [f"{statistics.median(t):.0f} / {statistics.mean(t):.0f}"
                   for (sh, _, _), t in cells.items() if sh == shape]
            print(f"{shape:14s} | " + " | ".join(row))
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main(sys.argv)
