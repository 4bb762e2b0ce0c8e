#!/usr/bin/env python3
"""Golden files for the nn engine (tests/unit/test_nn_ops.c, test_nn_safetensors.c), made by PyTorch.

Each op case is one safetensors file tests/golden/nn/op_<name>.safetensors holding the inputs
(x, x0, x1, ...), the parameters (w, b, gamma, beta) and torch's output y, with the op and its
arguments in __metadata__ (op, stride, padding, output_padding, groups, eps, slope). The files are
written by hand (8-byte length + JSON + data: the format is that small) because the safetensors
package is not in the venv; st_*.safetensors are valid and malformed model files for the reader.
Run: .venv/bin/python tests/scripts/make_golden_nn.py   (CPU, deterministic seeds)
"""
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "nn")
torch.manual_seed(20240605)
torch.set_num_threads(1)

DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def st_bytes(tensors, meta=None, raw=False):
    """safetensors bytes: tensors is a list of (name, torch tensor); raw=True returns (header, data)."""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    for name, t in tensors:
        t = t.contiguous()
        if t.dtype in (torch.float16, torch.bfloat16):
            b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        elif t.dtype == torch.int64:
            b = t.numpy().astype("<i8").tobytes()
        else:
            b = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the reference writer pads the header to 8 bytes
    if raw:
        return h, b"".join(blobs)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def case(name, meta, **ts):
    tensors = [(k, v) for k, v in ts.items() if v is not None]
    write(f"op_{name}.safetensors", st_bytes(tensors, meta))


def triple(v):
    return ",".join(str(int(a)) for a in (v if isinstance(v, (tuple, list)) else (v, v, v)))


def conv(name, xs, co, k, stride=1, pad=0, bias=True):
    x = torch.randn(*xs)
    w = torch.randn(co, xs[1], *((k,) * 3 if isinstance(k, int) else k)) * 0.3
    b = torch.randn(co) if bias else None
    y = F.conv3d(x, w, b, stride=stride, padding=pad)
    case(name, {"op": "conv3d", "stride": triple(stride), "padding": triple(pad)}, x=x, w=w, b=b, y=y)


def convt(name, xs, co, k, stride, pad=0, opad=0, bias=True):
    x = torch.randn(*xs)
    w = torch.randn(xs[1], co, *((k,) * 3 if isinstance(k, int) else k)) * 0.3
    b = torch.randn(co) if bias else None
    y = F.conv_transpose3d(x, w, b, stride=stride, padding=pad, output_padding=opad)
    case(name, {"op": "conv_transpose3d", "stride": triple(stride), "padding": triple(pad),
                "output_padding": triple(opad)}, x=x, w=w, b=b, y=y)


def ops():
    conv("k3_s1", (1, 2, 5, 6, 7), 3, 3, 1, 1)
    conv("k3_s1_wide", (1, 4, 3, 5, 35), 9, 3, 1, 1)        # x tiles of 24 and 8, then 3 scalar columns
    conv("k3_s2", (1, 3, 7, 8, 9), 4, 3, 2, 1)
    conv("k3_s2_wide", (1, 2, 4, 6, 21), 5, 3, 2, 1)        # strided vector loads (11 output columns)
    conv("k133_s122", (2, 3, 5, 9, 10), 5, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=False)  # nnU-Net anisotropic stage
    conv("k311_s211", (1, 3, 6, 4, 5), 2, (3, 1, 1), (2, 1, 1), (1, 0, 0))
    conv("k1", (1, 6, 4, 5, 6), 3, 1)
    conv("k1_nobias", (1, 16, 3, 4, 11), 13, 1, bias=False)
    conv("k3_nopad", (1, 2, 4, 5, 6), 3, 3)
    convt("t2_s2", (1, 4, 3, 4, 5), 2, 2, 2)
    convt("t122_s122", (1, 3, 3, 3, 4), 2, (1, 2, 2), (1, 2, 2), bias=False)
    convt("t3_s2_p1_op1", (1, 2, 3, 3, 4), 3, 3, 2, 1, 1)
    convt("t3_s1_p1", (2, 3, 4, 3, 5), 2, 3, 1, 1)

    def gn(name, xs, groups, affine, eps=1e-5):
        x = torch.randn(*xs) * 2 + 3
        g = torch.randn(xs[1]) if affine else None
        b = torch.randn(xs[1]) if affine else None
        y = F.group_norm(x, groups, g, b, eps)
        case(name, {"op": "group_norm", "groups": groups, "eps": repr(eps)}, x=x, gamma=g, beta=b, y=y)

    gn("gn_g4", (1, 8, 4, 5, 6), 4, True)
    gn("gn_g3_noaffine", (2, 6, 3, 4, 5), 3, False)
    gn("gn_g1", (1, 5, 3, 3, 3), 1, True, 1e-6)
    gn("gn_g8_c16", (1, 16, 4, 4, 4), 8, True)

    def inorm(name, xs, affine, eps=1e-5):
        x = torch.randn(*xs) * 0.5 - 1
        m = torch.nn.InstanceNorm3d(xs[1], eps=eps, affine=affine)
        if affine:
            with torch.no_grad():
                m.weight.copy_(torch.randn(xs[1]))
                m.bias.copy_(torch.randn(xs[1]))
        with torch.no_grad():
            y = m(x)
        case(name, {"op": "instance_norm", "eps": repr(eps)}, x=x,
             gamma=m.weight.detach() if affine else None, beta=m.bias.detach() if affine else None, y=y)

    inorm("in_affine", (1, 4, 5, 6, 7), True)
    inorm("in_noaffine", (2, 3, 3, 4, 5), False, 1e-3)

    x = torch.randn(1, 3, 4, 5, 6)
    case("relu", {"op": "relu"}, x=x, y=F.relu(x))
    case("leaky_relu", {"op": "leaky_relu", "slope": "0.01"}, x=x, y=F.leaky_relu(x, 0.01))
    for nm, xs in (("up", (1, 2, 3, 4, 5)), ("up_thin", (2, 1, 1, 2, 3))):
        x = torch.randn(*xs)
        y = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
        case(nm, {"op": "upsample_trilinear2x"}, x=x, y=y)
    a, b = torch.randn(2, 3, 3, 4, 5), torch.randn(2, 3, 3, 4, 5)
    case("add", {"op": "add"}, x0=a, x1=b, y=a + b)
    a, b, c = torch.randn(1, 2, 3, 4, 5), torch.randn(1, 3, 3, 4, 5), torch.randn(1, 1, 3, 4, 5)
    case("concat2", {"op": "concat"}, x0=a, x1=b, y=torch.cat([a, b], 1))
    case("concat3", {"op": "concat"}, x0=a, x1=b, x2=c, y=torch.cat([a, b, c], 1))
    x = torch.randn(1, 5, 3, 4, 5) * 4
    case("softmax", {"op": "softmax_c"}, x=x, y=torch.softmax(x, 1))
    x = torch.randint(0, 3, (2, 4, 3, 4, 5)).float()  # many exact ties: argmax takes the first
    case("argmax", {"op": "argmax_c"}, x=x, y=torch.argmax(x, 1, keepdim=True).float())


def reader_files():
    w = torch.randn(4, 3, 3, 3, 3)
    b = torch.randn(4)
    meta = {"arch": "SegResNet", "label_names": "{\"1\": \"spleen\", \"2\": \"kid\u00e9ney\"}"}
    # a model as safetensors.torch.save_file writes it: f32, f16, bf16 (and an int64 counter)
    half = (torch.randn(2, 3) * 100).half()
    half[0, 0] = 6.1e-5  # near the smallest normal
    half[0, 1] = 3e-7    # subnormal
    half[0, 2] = float("inf")
    bf = (torch.randn(5) * 1e3).bfloat16()
    tensors = [("encoder.conv.weight", w), ("encoder.conv.bias", b), ("half", half), ("bf", bf),
               ("steps", torch.tensor([7], dtype=torch.int64)), ("scalar", torch.tensor(2.5))]
    write("st_model.safetensors", st_bytes(tensors, meta))
    # what the reader must produce for f16/bf16: torch's own conversion to f32
    write("st_model_expected.safetensors", st_bytes([("half", half.float()), ("bf", bf.float())]))

    h, data = st_bytes([("a", torch.ones(2, 2)), ("b", torch.zeros(3))], raw=True)
    hd = json.loads(h)

    def variant(name, header=None, data_=data, prefix=None):
        hb = header if isinstance(header, bytes) else json.dumps(header).encode()
        write(f"st_bad_{name}.safetensors", (prefix if prefix is not None else struct.pack("<Q", len(hb))) + hb + data_)

    variant("header_len", hd, prefix=struct.pack("<Q", 1 << 40))
    variant("not_json", b"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}, ")
    variant("not_object", b"[1, 2, 3]")
    out = json.loads(json.dumps(hd)); out["b"]["data_offsets"] = [16, 40]
    variant("offsets_range", out)
    ov = json.loads(json.dumps(hd)); ov["b"]["data_offsets"] = [8, 20]
    variant("overlap", ov, data_=data[:20])
    dt = json.loads(json.dumps(hd)); dt["a"]["dtype"] = "F99"
    variant("dtype", dt)
    sh = json.loads(json.dumps(hd)); sh["a"]["shape"] = [2, 3]
    variant("shape", sh)
    variant("truncated", hd, data_=data[:-4])
    neg = json.dumps(hd).replace("[3]", "[-3]").encode()
    variant("negative", neg)
    variant("dup", b"{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 16]}, "
                   b"\"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [16, 28]}}")
    variant("meta_value", dict(hd, __metadata__={"k": 3}))
    write("st_bad_short.safetensors", b"\x05\x00\x00")


def main():
    os.makedirs(OUT, exist_ok=True)
    ops()
    reader_files()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
