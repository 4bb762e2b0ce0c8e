#!/usr/bin/env bats
# The same pipeline over pipes and over ZeroMQ (tcp:// and ipc:// on loopback) gives the same bytes.
load helpers

pipeline_pipes() {
    vol-read "$TS/example_ct_sm.nii.gz" "$TS/example_seg.nii.gz" \
        | vol-cat | label-map --preset spine25 --vol image \
        | vol-write --stream -o "$1"
}

free_port() {
    "$VOXPIPE_PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

@test "pipes and ZeroMQ PUSH/PULL give byte-identical output" {
    pipeline_pipes "$T/pipes.vxp"
    p1=$(free_port)
    # stable parts bind, dynamic parts connect; each stage ends its stream with an end-of-stream frame
    vol-write --stream -i "@ipc://$T/s3" -o "$T/zmq.vxp" & w=$!
    label-map --preset spine25 --vol image -i "@tcp://127.0.0.1:$p1" -o ">ipc://$T/s3" & l=$!
    vol-cat -i "@ipc://$T/s1" -o ">tcp://127.0.0.1:$p1" & c=$!
    vol-read "$TS/example_ct_sm.nii.gz" "$TS/example_seg.nii.gz" -o ">ipc://$T/s1"
    wait $c; wait $l; wait $w
    [ -s "$T/pipes.vxp" ]
    cmp "$T/pipes.vxp" "$T/zmq.vxp"
    # and the stream holds both cases, with the provenance of all four writers
    run "$VOXPIPE_PY" -c '
import sys; sys.path.insert(0, sys.argv[2]); import vxp
cs = list(vxp.read(open(sys.argv[1], "rb")))
print(len(cs), [p["program"] for p in cs[0]["meta"]["provenance"]])' "$T/zmq.vxp" "$SCRIPTS"
    [ "$output" = "2 ['vol-read', 'vol-cat', 'label-map', 'vol-write']" ]
}

@test "a ZeroMQ stage started before its upstream waits for it (slow joiner)" {
    vol-cat -i "@ipc://$T/late" -o "$T/late.vxp" & c=$!
    sleep 0.5
    vol-read "$TS/example_ct_sm.nii.gz" -o ">ipc://$T/late"
    wait $c
    vol-read "$TS/example_ct_sm.nii.gz" | vol-cat > "$T/direct.vxp"
    cmp "$T/late.vxp" "$T/direct.vxp"
}

@test "a connect to an invalid endpoint is a clear runtime error" {
    assert_exit 1 vol-cat -i "@tcp://256.1.1.1:1"
    [[ "$output" == "vol-cat: error: '@tcp://256.1.1.1:1': cannot bind:"* ]]
}
