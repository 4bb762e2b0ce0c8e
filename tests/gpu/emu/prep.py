#!/usr/bin/env python3
"""tests/gpu/emu/prep.py - turn one of lib/cuda's .cu files into host C++ for the CPU emulation
(tests/gpu/emulate.sh): every kernel launch `k<<<grid, block, 0, c->stream>>>(args);` becomes
EMU_LAUNCH(grid, block, "k", [a_ = std::make_tuple(args)]() { std::apply(... k(a...) ..., a_); }),
which runs the blocks and threads one after the other (emu.h) -- or, while the stream is being
captured into a CUDA graph, records the launch for cudaGraphLaunch; the arguments are evaluated at
the launch, as CUDA does, so a replay reads the values of the capture -- and the CUDA internals
header is replaced by emu.h.
usage: prep.py FILE.cu [HEADER] > FILE.cc     (HEADER replaces nn_cuda_int.h; default emu.h)"""
import re, sys
src = open(sys.argv[1]).read()
pat = re.compile(r'(\w+(?:<[^<>]*>)?)<<<(.*?),\s*(\w+),\s*0,\s*c->stream>>>\((.*?)\);', re.S)
def rep(m):
    return ('EMU_LAUNCH((%s), (%s), "%s", [a_ = std::make_tuple(%s)]() { std::apply([](auto... v) { %s(v...); }, a_); });'
            % (m.group(2), m.group(3), m.group(1), re.sub(r'\bNULL\b', 'nullptr', m.group(4)), m.group(1)))  # NULL: a long in a tuple
src = pat.sub(rep, src)
src = src.replace('#include "nn_cuda_int.h"', '#include "%s"' % (sys.argv[2] if len(sys.argv) > 2 else "emu.h"))
print(src)
