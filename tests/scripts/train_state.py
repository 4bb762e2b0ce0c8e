#!/usr/bin/env python3
"""tests/scripts/train_state.py - helpers for the trainers' training-state tests (the loss scaler in
last.optim.safetensors): read, set or remove __metadata__ keys of a safetensors file in place
(atomically), count the steps the loss scaler skipped in a --log-json file, compare two files.

usage: train_state.py meta FILE KEY            print the metadata value (nothing when absent)
       train_state.py set FILE KEY=VALUE...    set metadata values
       train_state.py del FILE KEY...          remove metadata keys
       train_state.py strip FILE               remove the loss scaler's keys (voxpipe.train.loss_scale*),
                                               as a checkpoint written before they existed
       train_state.py skips LOG.jsonl          iterations whose grad_norm is not finite (skipped steps)
       train_state.py cmp A B                  as train_check.py cmp (largest difference)
Needs numpy (cmp only)."""
import json
import os
import re
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        return h, f.read()


def write(path, h, data):
    hb = json.dumps(h, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = path + ".tmp-train-state"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + data)
    os.replace(tmp, path)


def main(argv):
    cmd, path = argv[0], argv[1]
    if cmd == "meta":
        h, _ = read(path)
        v = h.get("__metadata__", {}).get(argv[2])
        if v is not None:
            print(v)
        return 0
    if cmd in ("set", "del", "strip"):
        h, data = read(path)
        m = h.setdefault("__metadata__", {})
        if cmd == "set":
            for kv in argv[2:]:
                k, v = kv.split("=", 1)
                m[k] = v
        elif cmd == "del":
            for k in argv[2:]:
                del m[k]
        else:
            gone = [k for k in m if k.startswith("voxpipe.train.loss_scale")]
            if not gone:
                print("train_state.py: %s: no loss-scaler keys to strip" % path, file=sys.stderr)
                return 1
            for k in gone:
                del m[k]
        write(path, h, data)
        return 0
    if cmd == "skips":
        n = 0
        for line in open(path):
            if '"type":"iter"' in line:
                g = re.search(r'"grad_norm":([^,}]*)', line).group(1)
                try:
                    finite = abs(float(g)) < float("inf")
                except ValueError:
                    finite = False
                n += not finite
        print(n)
        return 0
    if cmd == "cmp":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import train_check
        return train_check.cmp([argv[1], argv[2], "--rtol", "0", "--atol", "0"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
