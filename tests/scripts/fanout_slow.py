"""A slow pass-through filter for the fan-out tests: copies each frame of stdin to stdout unchanged
(the raw bytes, flushed frame by frame), after sleeping DELAY seconds per frame. Put in front of a
real filter ('fanout_slow.py 0.05 | resample ...') it makes a long-running worker filter slow enough
to be killed or stalled mid-case while leaving the bytes (and provenance) of the result unchanged.

usage: fanout_slow.py DELAY
"""
import os
import sys
import time

import msgpack


def main():
    delay = float(sys.argv[1])
    up = msgpack.Unpacker(raw=True, max_buffer_size=2**31 - 1)
    buf, base = bytearray(), 0  # buf holds the stream from offset base on
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        up.feed(chunk)
        buf += chunk
        for _ in up:
            end = up.tell()
            time.sleep(delay)
            sys.stdout.buffer.write(buf[: end - base])
            sys.stdout.buffer.flush()
            del buf[: end - base]
            base = end


main()
