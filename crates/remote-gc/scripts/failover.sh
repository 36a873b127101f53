#!/bin/bash
# Measures the remote GC owner election of two status-server processes on a real etcd:
#   failover_after_kill9         kill -9 of the owner -> the survivor answers IsOwner
#   stepdown_after_etcd_stop     SIGSTOP of etcd -> the owner no longer answers IsOwner
#   owner_again_after_etcd_cont  SIGCONT of etcd -> an owner again
# Usage: crates/remote-gc/scripts/failover.sh TTL_SECONDS [BASE_PORT]   (docs/performance.md)
# Needs etcd (Debian's etcd-server), curl, bc, and a built binary (cargo build -p status-server;
# STATUS_SERVER_BIN overrides its path). Uses loopback ports BASE_PORT..BASE_PORT+11.
set -eu
TTL=$1
P=${2:-24100}
BIN=${STATUS_SERVER_BIN:-$(dirname "$0")/../../../target/debug/status-server}
D=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT

etcd --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$P" --advertise-client-urls "http://127.0.0.1:$P" \
    --listen-peer-urls "http://127.0.0.1:$((P + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((P + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((P + 1))" >"$D/etcd.log" 2>&1 &
ETCD=$!
PIDS+=("$ETCD")
for _ in $(seq 100); do curl -s -m 1 "127.0.0.1:$P/health" | grep -q true && break; sleep 0.1; done

start() {
    "$BIN" --status-addr "127.0.0.1:$1" --data-dir "$D/d$1" --etcd-endpoints "127.0.0.1:$P" \
        --engine-addr "node$1:3930" --owner-ttl "$TTL" >"$D/s$1.log" 2>&1 &
    PIDS+=($!)
}
now() { date +%s.%N; }
is_owner() { curl -s -m 10 "127.0.0.1:$1/tiflash/remote/owner/info" | grep -q IsOwner; }
random_secs() { echo "scale=3; $RANDOM * $1 / 32767" | bc; } # 0..$1, so renewals fall at any phase

A=$((P + 10)) B=$((P + 11))
start $A
start $B
for _ in $(seq 200); do { is_owner $A || is_owner $B; } && break; sleep 0.1; done
if is_owner $A; then OWNER=${PIDS[1]} SURVIVOR=$B; else OWNER=${PIDS[2]} SURVIVOR=$A; fi

sleep "$(echo "$TTL + $(random_secs "$TTL")" | bc)"
t0=$(now)
kill -KILL "$OWNER"
until is_owner $SURVIVOR; do sleep 0.1; done
echo "ttl=$TTL failover_after_kill9=$(echo "$(now) - $t0" | bc)"

sleep "$(echo "1 + $(random_secs "$TTL")" | bc)"
t0=$(now)
kill -STOP "$ETCD"
# The time a poll is sent counts: a node answers from its state on arrival, and a non-owner's
# answer then waits for etcd.
while ts=$(now) && is_owner $SURVIVOR; do sleep 0.1; done
echo "ttl=$TTL stepdown_after_etcd_stop=$(echo "$ts - $t0" | bc)"

kill -CONT "$ETCD"
t0=$(now)
until is_owner $SURVIVOR; do sleep 0.1; done
echo "ttl=$TTL owner_again_after_etcd_cont=$(echo "$(now) - $t0" | bc)"
