#!/usr/bin/env python3
"""tests/gpu/emu/prep.py - turn one of lib/cuda's .cu files into host C++ for the CPU emulation
(tests/gpu/emulate.sh): every kernel launch `k<<<grid, block, 0, c->stream>>>(args);` becomes
EMU_LAUNCH(grid, block, "k", [&]() { k(args); }), which runs the blocks and threads one after the
other (emu.h), and the CUDA internals header is replaced by emu.h.
usage: prep.py FILE.cu [HEADER] > FILE.cc     (HEADER replaces nn_cuda_int.h; default emu.h)"""
import re, sys
src = open(sys.argv[1]).read()
pat = re.compile(r'(\w+(?:<[^<>]*>)?)<<<(.*?),\s*(\w+),\s*0,\s*c->stream>>>\((.*?)\);', re.S)
def rep(m):
    return 'EMU_LAUNCH((%s), (%s), "%s", [&]() { %s(%s); });' % (m.group(2), m.group(3), m.group(1), m.group(1), m.group(4))
src = pat.sub(rep, src)
src = src.replace('#include "nn_cuda_int.h"', '#include "%s"' % (sys.argv[2] if len(sys.argv) > 2 else "emu.h"))
print(src)
