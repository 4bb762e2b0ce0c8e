#!/usr/bin/env bats
# fanout broker + worker: every case exactly once and byte-identical to a single-process run, with
# workers killed and stalled; --ordered; CURVE with a ZAP allow-list; the worker's long-running
# filter processes (and --fresh). Separate processes on loopback (fanout_netns.bats: across hosts).
load helpers

# N cases of the shared CT, ids c01..cN, and the single-process reference through FILTER.
make_stream() {
    for i in $(seq -w 1 "$1"); do vol-read --id "c$i" "$TS/example_ct_sm.nii.gz"; done > "$T/in.vxp"
    resample --spacing 6 < "$T/in.vxp" > "$T/ref.vxp"
}

check() { "$VOXPIPE_PY" "$SCRIPTS/fanout_check.py" "$@"; }

# wait until FILE contains TEXT (10 s at most)
wait_for() {
    for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

start_worker() { # NAME ARGS... : a worker on $T/b in the background, log in $T/NAME.log
    local n=$1; shift
    worker -v --insecure -c "ipc://$T/b" --name "$n" --heartbeat 0.2 --timeout 1 "$@" 2>"$T/$n.log" &
    WORKERS+=($!)
}

# a worker that joined after the broker finished never hears DONE: stop those by pid
teardown() { for p in "${WORKERS[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done; true; }

@test "4 workers, one killed (SIGKILL) and one stalled (SIGSTOP) mid-case: 50 results, each once, byte-identical" {
    make_stream 50
    # a long-running filter, 0.1 s per case; the provenance is resample's own
    slow=(-- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.1 | resample --spacing 6")
    start_worker w1 "${slow[@]}"; w1=$!
    start_worker w2 "${slow[@]}"; w2=$!
    start_worker killed "${slow[@]}"; wk=$!
    start_worker stalled "${slow[@]}"; ws=$!
    fanout --insecure --bind "ipc://$T/b" --heartbeat 0.2 --timeout 1 -i "$T/in.vxp" -o "$T/out.vxp" 2>"$T/fo.log" & f=$!
    wait_for "$T/killed.log" "received"
    kill -KILL $wk
    wait_for "$T/stalled.log" "received"
    kill -STOP $ws
    wait $f
    cat "$T/fo.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$status" -eq 0 ] && [ "$output" = "ok 50 cases" ]
    grep -Eq "worker killed#[0-9]*: (disconnected|silent past the timeout); [1-9] case\(s\) taken back" "$T/fo.log"
    grep -Eq "worker stalled#[0-9]*: silent past the timeout; [1-9] case\(s\) taken back" "$T/fo.log"
    grep -Eq "summary: 50 cases read, 50 written, [1-9][0-9]* retries, 0 given up" "$T/fo.log"
}

@test "--ordered writes the results in input order" {
    make_stream 12
    for k in 1 2 3 4; do start_worker "w$k" -- resample --spacing 6; done
    run fanout --insecure --ordered --window 5 --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$status" -eq 0 ]
    run check "$T/out.vxp" "$T/ref.vxp" --ordered
    [ "$output" = "ok 12 cases" ]
}

@test "--fresh (a process per case): a case that fails on --max-attempts workers is reported and skipped; exit 1" {
    make_stream 3
    vol-read --id BADCASE "$TS/example_ct_sm.nii.gz" >> "$T/in.vxp"
    failing=(-- sh -c 'f=$(mktemp); cat > "$f"; if grep -q BADCASE "$f"; then rm -f "$f"; exit 3; fi; resample --spacing 6 < "$f"; rm -f "$f"')
    start_worker w1 --fresh "${failing[@]}"; start_worker w2 --fresh "${failing[@]}"
    run fanout --insecure --max-attempts 2 --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fanout: error: case 'BADCASE': failed on 2 workers (last: worker "*"exited with status 3); given up"* ]]
    [[ "$output" == *"1 case(s) given up"* ]]
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 3 cases" ]
}

@test "SIGTERM: no more input is read, the cases read are finished, exit 130, the output is a valid stream" {
    make_stream 4
    start_worker w1 -- resample --spacing 6
    mkfifo "$T/fifo"
    fanout --insecure --bind "ipc://$T/b" -i "$T/fifo" -o "$T/out.vxp" 2>"$T/fo.log" & f=$!
    exec 7>"$T/fifo"; cat "$T/in.vxp" >&7 # the stream stays open: no end of input
    wait_for "$T/w1.log" "case #3 received"
    sleep 0.5
    kill -TERM $f
    st=0; wait $f || st=$?
    exec 7>&-
    [ "$st" -eq 130 ]
    grep -q "interrupted: reading no more input" "$T/fo.log"
    grep -q "summary: 4 cases read, 4 written" "$T/fo.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 4 cases" ]
}

@test "CURVE: a listed worker gets the cases; an unknown key and a plain client are refused and get none" {
    make_stream 6
    mkdir -p "$T/keys/allow" && cd "$T/keys"
    vp-keygen broker; vp-keygen good; vp-keygen bad
    [ "$(stat -c %a good.key)" = 600 ] && [ "$(stat -c %a good.pub)" = 644 ]
    cp good.pub allow/
    fanout --bind "ipc://$T/b" --key broker.key --allow allow -i <(sleep 1.5; cat "$T/in.vxp") -o "$T/out.vxp" 2>"$T/fo.log" & f=$!
    worker -v -c "ipc://$T/b" --key good.key --server-key broker.pub --name good -- resample --spacing 6 2>"$T/good.log" & g=$!
    worker -v -c "ipc://$T/b" --key bad.key --server-key broker.pub --name bad -- resample --spacing 6 2>"$T/bad.log" & b=$!
    worker -v -c "ipc://$T/b" --insecure --name plain -- resample --spacing 6 2>"$T/plain.log" & p=$!
    wait $f
    WORKERS=($g $b $p)
    cat "$T/fo.log"
    grep -q "CURVE encryption on (libzmq .* with libsodium)" "$T/fo.log"
    # Z85 keys hold regex metacharacters (+ * $ ^ [ ...): match the key as a fixed string
    grep "refused a peer from " "$T/fo.log" | grep -qF ": unknown key $(cat bad.pub)"
    grep -q "summary: 6 cases read, 6 written" "$T/fo.log"
    ! grep -q "worker bad\|worker plain" "$T/fo.log"
    ! grep -q "received" "$T/bad.log"
    ! grep -q "received" "$T/plain.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 6 cases" ]
}

@test "CURVE setup errors: no --allow, a secret key readable by others, a bad allow-list" {
    mkdir -p "$T/k" && cd "$T/k" && vp-keygen b && echo "not a key" > list
    assert_exit 1 fanout --bind "ipc://$T/b" --key b.key -i /dev/null -o "$T/o.vxp"
    [[ "$output" == *"CURVE needs --key (the broker's secret key) and --allow"* ]]
    chmod 644 b.key
    assert_exit 1 fanout --bind "ipc://$T/b" --key b.key --allow b.pub -i /dev/null -o "$T/o.vxp"
    [[ "$output" == *"secret key is readable by group or others (mode 644)"* ]]
    chmod 600 b.key
    assert_exit 1 fanout --bind "ipc://$T/b" --key b.key --allow list -i /dev/null -o "$T/o.vxp"
    [[ "$output" == *"'list': line 1: not a Z85 public key"* ]]
    [ ! -e "$T/o.vxp" ]
    assert_exit 1 vp-keygen b
    [[ "$output" == *"'b.key': cannot create: File exists (use --force)"* ]]
}

@test "long-running filter: one process per slot serves every case (-j 1 and 2); --fresh starts one per case" {
    make_stream 10
    start_worker w1 -- resample --spacing 6
    run fanout --insecure --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$status" -eq 0 ]
    wait "${WORKERS[0]}"
    grep -q "worker: 10 case(s) done, 0 failed, 1 filter process(es) started" "$T/w1.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 10 cases" ]
    start_worker w2 --fresh -j 2 -- resample --spacing 6
    run fanout --insecure --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out2.vxp"
    [ "$status" -eq 0 ]
    wait "${WORKERS[1]}"
    grep -q "worker: 10 case(s) done, 0 failed, 10 filter process(es) started" "$T/w2.log"
    run check "$T/out2.vxp" "$T/ref.vxp"
    [ "$output" = "ok 10 cases" ]
    start_worker w3 --credit 4 -j 2 -- resample --spacing 6 # two long-running processes side by side
    run fanout --insecure --ordered --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out3.vxp"
    [ "$status" -eq 0 ]
    wait "${WORKERS[2]}"
    grep -q "worker: 10 case(s) done, 0 failed, 2 filter process(es) started" "$T/w3.log"
    run check "$T/out3.vxp" "$T/ref.vxp" --ordered
    [ "$output" = "ok 10 cases" ]
}

@test "long-running filter that exits on a bad case: that case fails (given up), new processes serve the rest" {
    for id in c1 c2 BADCASE c3 c4; do
        if [ $id = BADCASE ]; then vol-read --id $id --image-name other "$TS/example_ct_sm.nii.gz"
        else vol-read --id $id "$TS/example_ct_sm.nii.gz"; fi
    done > "$T/in.vxp"
    for id in c1 c2 c3 c4; do vol-read --id $id "$TS/example_ct_sm.nii.gz"; done | resample --spacing 6 --vol image > "$T/ref.vxp"
    start_worker w1 -- resample --spacing 6 --vol image
    run fanout --insecure --max-attempts 2 --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out.vxp"
    [ "$status" -eq 1 ]
    [[ "$output" == *"case 'BADCASE': failed on 2 workers (last: worker w1#0: 'resample' exited with status 3); given up"* ]]
    wait "${WORKERS[0]}"
    cat "$T/w1.log"
    grep -q "resample: error: case 'BADCASE': no volume 'image'" "$T/w1.log"
    grep -Eq "worker: 4 case\(s\) done, 2 failed, [23] filter process\(es\) started" "$T/w1.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 4 cases" ]
}

@test "long-running filter killed (SIGKILL) mid-case: the case is handed out again, a new process serves on" {
    make_stream 8
    start_worker w1 -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.3 | resample --spacing 6"
    fanout -v --insecure --bind "ipc://$T/b" -i "$T/in.vxp" -o "$T/out.vxp" 2>"$T/fo.log" & f=$!
    wait_for "$T/w1.log" "case #2 received"
    kill -KILL $(pgrep -P "${WORKERS[0]}") # the filter process (sh), mid-case: its case is #1 or #2
    wait $f
    wait "${WORKERS[0]}"
    cat "$T/w1.log" "$T/fo.log"
    grep -Eq "worker: warning: case #[12]: 'sh' killed by signal 9" "$T/w1.log"
    grep -Eq "case 'c[23]': worker w1#0: 'sh' killed by signal 9; handed to another worker \(attempt 2\)" "$T/fo.log"
    grep -q "worker: 8 case(s) done, 1 failed, 2 filter process(es) started" "$T/w1.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 8 cases" ]
}
