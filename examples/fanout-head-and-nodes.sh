#!/usr/bin/env bash
# A head node hands cases to compute nodes over CurveZMQ and gathers the results, each case once.
# Copy the pieces to your machines; this script runs everything on one machine (loopback TCP) so
# it can be tried as it is. Run from the project root after `make`.
#
#   head:   vp-keygen broker; collect each node's NODE.pub into allow/
#           vol-read ... | fanout --bind tcp://0.0.0.0:5560 --key broker.key --allow allow/ > results.vxp
#   node:   vp-keygen node1; copy node1.pub to the head's allow/ and broker.pub from the head
#           worker -c tcp://HEAD:5560 --key node1.key --server-key broker.pub -- resample --spacing 1.5
#   GPU node: worker -c tcp://HEAD:5560 --key gpu1.key --server-key broker.pub --credit 2 -- infer-ressegnet -m MODEL
#           (each --jobs slot keeps one filter process from case to case, so a model is loaded once;
#           add --fresh for a program that reads all its input before writing anything)
# Secret keys (*.key) are written mode 0600 and never leave their machine; only *.pub travel.
set -euo pipefail
D=$(cd "${1:-../shared/data}/totalseg" && pwd)
export PATH="$PWD/bin:$PATH"
work=examples-out/fanout
rm -rf "$work" && mkdir -p "$work/allow"
cd "$work"
vp-keygen -q broker
for n in node1 node2; do vp-keygen -q "$n"; cp "$n.pub" allow/; done
port=$(( 20000 + RANDOM % 20000 ))
# three cases from the shared CT, resampled to 6 mm by whichever node is free
for id in a b c; do vol-read "$D/example_ct_sm.nii.gz" --id "$id"; done > cases.vxp
for n in node1 node2; do
    worker -q -c "tcp://127.0.0.1:$port" --name "$n" --key "$n.key" --server-key broker.pub -- resample --spacing 6 &
done
fanout --bind "tcp://127.0.0.1:$port" --key broker.key --allow allow -i cases.vxp -o results.vxp
kill %1 %2 2>/dev/null || true
wait 2>/dev/null || true
vol-info -i results.vxp
