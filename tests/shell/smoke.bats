#!/usr/bin/env bats
load helpers

@test "every program answers --help and --version" {
    for p in "$VOXPIPE_BIN"/*; do
        run "$p" --help
        [ "$status" -eq 0 ]
        [[ "$output" == *usage:* ]]
        run "$p" --version
        [ "$status" -eq 0 ]
        [[ "$output" == *voxpipe* ]]
    done
}

@test "an unknown option is a usage error (exit 2) with a prog: error: line" {
    run vol-cat --no-such-option
    [ "$status" -eq 2 ]
    [[ "$output" == "vol-cat: error: "* ]]
}

@test "a binary stream is never written to a terminal" {
    command -v script >/dev/null || skip "script(1) not installed"
    run script -qec "vol-read '$TS/example_ct_sm.nii.gz'" /dev/null
    [[ "$output" == *"refusing to write a binary stream to a terminal"* ]]
}

@test "an output that is a FIFO or device is written in place, never replaced by a file" {
    mkfifo "$T/fifo"
    vol-info -i "$T/fifo" > "$T/info.txt" &
    reader=$!
    vol-read "$TS/example_ct_sm.nii.gz" -o "$T/fifo"
    wait $reader
    [ -p "$T/fifo" ]
    grep -q "122x101x30" "$T/info.txt"
    # vol-write's NIfTI and stream outputs go through the same endpoint code
    vol-read "$TS/example_ct_sm.nii.gz" | vol-write --stream -o /dev/null
    [ -c /dev/null ]
}
