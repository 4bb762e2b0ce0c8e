#!/usr/bin/env bats
# fanout across hosts: the broker in one network namespace ("head"), workers in two others ("node
# a", "node b"), each node joined to the head by its own veth pair (10.77.1.0/24, 10.77.2.0/24),
# every connection tcp:// with CURVE. Needs root and `ip netns`; each test is skipped, saying why,
# where namespaces cannot be made. Namespaces and processes go in teardown, also after a failure.
load helpers

PORT=5560

setup() {
    T="${VOXPIPE_TMP:-$BATS_TMPDIR}/$(basename "$BATS_TEST_FILENAME" .bats)-$BATS_TEST_NUMBER"
    rm -rf "$T" && mkdir -p "$T"
    PIDS=()
    P="vf$$t$BATS_TEST_NUMBER" # names unique to this run and test (interface names <= 15 chars)
    NS_H="${P}h" NS_A="${P}a" NS_B="${P}b"
    local why
    why=$(netns_up 2>&1) || { netns_down; skip "network namespaces unavailable (needs root and 'ip netns'): $why"; }
    make_keys
}

teardown() {
    for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    netns_down
    true
}

netns_up() {
    [ "$(id -u)" = 0 ] || { echo "not root"; return 1; }
    command -v ip >/dev/null || { echo "no 'ip' command"; return 1; }
    ip netns add "$NS_H" && ip netns add "$NS_A" && ip netns add "$NS_B" || return 1
    local i ns
    for i in 1 2; do
        ns=$([ $i = 1 ] && echo "$NS_A" || echo "$NS_B")
        ip link add "${P}h$i" type veth peer name "${P}n$i" &&
            ip link set "${P}h$i" netns "$NS_H" && ip link set "${P}n$i" netns "$ns" &&
            ip -n "$NS_H" addr add "10.77.$i.1/24" dev "${P}h$i" && ip -n "$ns" addr add "10.77.$i.2/24" dev "${P}n$i" &&
            ip -n "$NS_H" link set "${P}h$i" up && ip -n "$ns" link set "${P}n$i" up || return 1
    done
    for ns in "$NS_H" "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up || return 1; done
}

netns_down() { # every step may fail (half-made setup): none stops the others
    local ns
    for ns in "$NS_H" "$NS_A" "$NS_B"; do # anything of this test still running in its namespaces
        { ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null; } || true
    done
    for ns in "$NS_H" "$NS_A" "$NS_B"; do ip netns del "$ns" 2>/dev/null || true; done # removes the veths in it
    ip link del "${P}h1" 2>/dev/null || true
    ip link del "${P}h2" 2>/dev/null || true
}

make_keys() {
    mkdir -p "$T/keys/allow"
    (cd "$T/keys" && vp-keygen -q broker && vp-keygen -q nodea && vp-keygen -q nodeb && vp-keygen -q stranger &&
        cp nodea.pub nodeb.pub allow/)
}

# N cases of the shared CT, ids c01..cN, and the single-process reference
make_stream() {
    for i in $(seq -w 1 "$1"); do vol-read --id "c$i" "$TS/example_ct_sm.nii.gz"; done > "$T/in.vxp"
    resample --spacing 6 < "$T/in.vxp" > "$T/ref.vxp"
}

check() { "$VOXPIPE_PY" "$SCRIPTS/fanout_check.py" "$@"; }

wait_for() { # FILE REGEX (extended), 20 s at most
    for _ in $(seq 200); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "timed out waiting for '$2' in $1" >&2; cat "$1" >&2; return 1
}

# broker ARGS... : fanout in the head namespace, CURVE, log in $T/fo.log; pid in $F
broker() {
    ip netns exec "$NS_H" fanout -v --bind "tcp://0.0.0.0:$PORT" --key "$T/keys/broker.key" --allow "$T/keys/allow" \
        --heartbeat 0.2 --timeout 1 "$@" 2>"$T/fo.log" &
    F=$!
    PIDS+=($F)
}

# node a|b NAME [KEY] -- FILTER... : a worker on that node over CURVE, log in $T/NAME.log; pid in $W
node() {
    local n=$1 name=$2 key=${3:-node$1}
    shift 3
    local ns=$NS_A head=10.77.1.1
    [ "$n" = b ] && ns=$NS_B head=10.77.2.1
    ip netns exec "$ns" worker -v -c "tcp://$head:$PORT" --name "$name" --key "$T/keys/$key.key" \
        --server-key "$T/keys/broker.pub" --heartbeat 0.2 --timeout 1 "$@" 2>"$T/$name.log" 7>&- &
    W=$!
    PIDS+=($W)
}

@test "two hosts over CURVE, 4 workers, one killed (SIGKILL) and one stalled (SIGSTOP) mid-case: 50 results, each once, byte-identical" {
    make_stream 50
    broker -i "$T/in.vxp" -o "$T/out.vxp"
    node a w1 nodea -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.1 | resample --spacing 6"
    node a killed nodea -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.1 | resample --spacing 6"; wk=$W
    node b w2 nodeb -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.1 | resample --spacing 6"
    node b stalled nodeb -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.1 | resample --spacing 6"; ws=$W
    wait_for "$T/killed.log" "received"
    kill -KILL $wk
    wait_for "$T/stalled.log" "received"
    kill -STOP $ws
    st=0; wait $F || st=$?
    cat "$T/fo.log"
    [ "$st" -eq 0 ]
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$status" -eq 0 ] && [ "$output" = "ok 50 cases" ]
    # the workers came from both other hosts, over CURVE with their own keys
    grep -qF "admitted $(cat "$T/keys/nodea.pub") from 10.77.1.2" "$T/fo.log"
    grep -qF "admitted $(cat "$T/keys/nodeb.pub") from 10.77.2.2" "$T/fo.log"
    grep -Eq "worker killed#[0-9]+: (disconnected|silent past the timeout); [1-9] case\(s\) taken back" "$T/fo.log"
    grep -Eq "worker stalled#[0-9]+: silent past the timeout; [1-9] case\(s\) taken back" "$T/fo.log"
    grep -Eq "summary: 50 cases read, 50 written, [1-9][0-9]* retries, 0 given up" "$T/fo.log"
    # the two healthy workers, one per host, did cases
    grep -Eq "worker w1#[0-9]+ +[1-9][0-9]* done" "$T/fo.log"
    grep -Eq "worker w2#[0-9]+ +[1-9][0-9]* done" "$T/fo.log"
}

@test "late duplicate: a stalled worker resumed (SIGCONT) after its case was done elsewhere: its result is dropped and logged" {
    make_stream 12
    mkfifo "$T/fifo"
    broker -i "$T/fifo" -o "$T/out.vxp"
    exec 7>"$T/fifo"
    cat "$T/in.vxp" >&7 & PIDS+=($!) # the input stays open (fd 7) until the duplicate is seen
    node b stalled nodeb -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.4 | resample --spacing 6"; ws=$W
    wait_for "$T/stalled.log" "case #[0-9]+ received"
    node a w1 nodea -- sh -c "$VOXPIPE_PY $SCRIPTS/fanout_slow.py 0.05 | resample --spacing 6"
    sleep 0.1
    kill -STOP $ws # mid-case: its filter goes on and leaves the result in the pipe
    wait_for "$T/fo.log" "worker stalled#[0-9]+: silent past the timeout; [1-9] case\(s\) taken back"
    # the cases it held and had not answered: wait until w1 has done each of them
    taken=()
    for s in $(sed -n 's/.*case #\([0-9]*\) received.*/\1/p' "$T/stalled.log"); do
        grep -Eq "case #$s '[^']*': result from worker stalled#" "$T/fo.log" || taken+=($s)
    done
    [ "${#taken[@]}" -ge 1 ]
    for s in "${taken[@]}"; do wait_for "$T/fo.log" "case #$s '[^']*': result from worker w1#"; done
    kill -CONT $ws
    wait_for "$T/fo.log" "case #[0-9]+: late duplicate result from worker stalled#[0-9]+ dropped"
    dup=$(sed -n 's/.*case #\([0-9]*\): late duplicate result from worker stalled#.*/\1/p' "$T/fo.log" | head -1)
    [[ " ${taken[*]} " == *" $dup "* ]] # the one taken back, not any other
    exec 7>&-
    st=0; wait $F || st=$?
    cat "$T/fo.log"
    [ "$st" -eq 0 ]
    grep -Eq "summary: 12 cases read, 12 written, [1-9][0-9]* retries, 0 given up, [1-9][0-9]* late duplicates dropped" "$T/fo.log"
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$status" -eq 0 ] && [ "$output" = "ok 12 cases" ]
}

@test "across hosts: a worker with an unknown key and a plain-TCP client are refused and get no data" {
    make_stream 6
    broker -i <(sleep 2; cat "$T/in.vxp") -o "$T/out.vxp"
    node a good nodea -- resample --spacing 6
    node b stranger stranger -- resample --spacing 6
    ip netns exec "$NS_B" worker -v -c "tcp://10.77.2.1:$PORT" --insecure --name plain -- resample --spacing 6 2>"$T/plain.log" &
    PIDS+=($!)
    # a raw TCP client speaking ZMTP 3.0 with the NULL mechanism: the server offers CURVE, then hangs up
    ip netns exec "$NS_B" "$VOXPIPE_PY" - 10.77.2.1 $PORT >"$T/raw.txt" 2>&1 <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03")  # signature, major version: the server answers with its greeting
got = b""
try:
    while len(got) < 64:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.sendall(b"\x00" + b"NULL".ljust(20, b"\0") + b"\0" + b"\0" * 31)  # the rest of ours: NULL mechanism
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    print("closed by the server after %d bytes, mechanism %s" % (len(got), got[12:32].rstrip(b"\0").decode()))
except (socket.timeout, ConnectionResetError) as e:
    print("%s after %d bytes" % (type(e).__name__, len(got)))
EOF
    st=0; wait $F || st=$?
    cat "$T/fo.log" "$T/raw.txt"
    [ "$st" -eq 0 ]
    grep -q "CURVE encryption on (libzmq .* with libsodium)" "$T/fo.log"
    grep "refused a peer from 10.77.2.2: unknown key" "$T/fo.log" | grep -qF -- "$(cat "$T/keys/stranger.pub")"
    grep -qF "admitted $(cat "$T/keys/nodea.pub") from 10.77.1.2" "$T/fo.log"
    grep -q "summary: 6 cases read, 6 written" "$T/fo.log"
    grep -Eq "worker good#[0-9]+ +6 done" "$T/fo.log"
    ! grep -q "worker stranger\|worker plain" "$T/fo.log"
    ! grep -q "received" "$T/stranger.log"
    ! grep -q "received" "$T/plain.log"
    grep -qx "closed by the server after 64 bytes, mechanism CURVE" "$T/raw.txt" # its greeting, no more
    run check "$T/out.vxp" "$T/ref.vxp"
    [ "$output" = "ok 6 cases" ]
}
