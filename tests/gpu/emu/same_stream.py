"""same_stream.py A B [--drop-opt NAME]... - exit 0 when two voxpipe streams are the same message for
message (msgpack objects compared decoded: every byte of every volume, meta, ids and order), except
that an option NAME and its value are dropped from every argument list first (the provenance of a
run records its options: --prefetch on and off must otherwise give the same stream). Prints
'same: N objects' or 'differ: ...'. Needs msgpack."""
import sys

import msgpack


def drop(o, names):
    if isinstance(o, list):
        out, i = [], 0
        while i < len(o):
            if isinstance(o[i], str) and o[i] in names and i + 1 < len(o):
                i += 2
                continue
            out.append(drop(o[i], names))
            i += 1
        return out
    if isinstance(o, dict):
        return {k: drop(v, names) for k, v in o.items()}
    return o


def load(path, names):
    with open(path, "rb") as f:
        return [drop(o, names) for o in msgpack.Unpacker(f, raw=False, strict_map_key=False)]


def main():
    args, names = [], set()
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--drop-opt":
            names.add(next(it))
        else:
            args.append(a)
    a, b = load(args[0], names), load(args[1], names)
    if len(a) != len(b):
        print(f"differ: {len(a)} vs {len(b)} objects")
        return 1
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            print(f"differ: object {i}")
            return 1
    if not a:
        print("differ: no objects")
        return 1
    print(f"same: {len(a)} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
