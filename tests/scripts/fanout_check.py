"""Compare a fanout result stream with a single-process reference, case by case.

usage: fanout_check.py RESULT REFERENCE [--ordered]
Every case id of REFERENCE must appear exactly once in RESULT, as the same frame bytes (the frames are
sliced raw from the streams, not re-encoded); RESULT holds no other case. With --ordered the ids must
also come in REFERENCE's order. Prints 'ok N cases' or the first difference, and exits 1 on one.
"""
import sys

import msgpack


def frames(path):
    data = open(path, "rb").read()
    up = msgpack.Unpacker(raw=False, max_buffer_size=len(data) + 1)
    up.feed(data)
    out, pos = [], 0
    for obj in up:
        end = up.tell()
        if not obj.get("eos"):
            out.append((obj["id"], data[pos:end]))
        pos = end
    return out


def main():
    res, ref = frames(sys.argv[1]), frames(sys.argv[2])
    ordered = "--ordered" in sys.argv[3:]
    ids = [i for i, _ in res]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        sys.exit(f"duplicate case ids in the result: {dup}")
    want = dict(ref)
    extra = sorted(set(ids) - set(want))
    missing = [i for i, _ in ref if i not in set(ids)]
    if extra or missing:
        sys.exit(f"missing {missing}, unexpected {extra}")
    for i, b in res:
        if b != want[i]:
            sys.exit(f"case {i}: result differs from the single-process run")
    if ordered and ids != [i for i, _ in ref]:
        sys.exit(f"order differs: {ids[:10]}...")
    print(f"ok {len(res)} cases")


main()
