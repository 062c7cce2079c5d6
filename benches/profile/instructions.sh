#!/usr/bin/env bash
# The server's user-space instructions per delivery, counted by valgrind's
# callgrind: a figure that, unlike CPU time, a busy machine does not move,
# for comparing two builds (docs/measurements.md, "Capacity on one server
# core: before and after framing once"). CLIENTS subscribers of TRANSPORT,
# MESSAGES messages at RATE a second; the counters are zeroed once every
# subscriber is connected and read when loadgen is done, so the count is
# the sending, the fan-out and the closing of the subscribers. The kernel's
# share (the writes) is not counted.
#
#   cargo build --release -p chat-demo -p chat-loadgen
#   benches/profile/instructions.sh sse
#   BIN=/a/copy/of/another/build benches/profile/instructions.sh sse
set -euo pipefail
TRANSPORT=${1:?usage: instructions.sh TRANSPORT}
BIN=${BIN:-$(dirname "$0")/../../target/release}
CLIENTS=${CLIENTS:-200}
MESSAGES=${MESSAGES:-200}
RATE=${RATE:-20}
PORT=${PORT:-18791}
OUT=${OUT:-/tmp/chat-instructions-$TRANSPORT}
# Builds from before the per-client limits have no flag to switch them off.
LIMITS=$("$BIN/chat-demo" --help | grep -q -- --no-client-limits && echo --no-client-limits || true)
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$OUT.%p" "$BIN/chat-demo" \
  --addr "127.0.0.1:$PORT" $LIMITS > "$OUT.server" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do grep -q "listening on" "$OUT.server" && break; sleep 0.5; done
taskset -c 1 "$BIN/loadgen" --url "http://127.0.0.1:$PORT" --transport "$TRANSPORT" \
  --clients "$CLIENTS" --rate "$RATE" --messages "$MESSAGES" --connect-rate 200 \
  --drain-timeout 120 > "$OUT.loadgen" 2>/dev/null &
LOADGEN=$!
for _ in $(seq 1 600); do grep -q " connected in " "$OUT.loadgen" 2>/dev/null && break; sleep 0.2; done
callgrind_control -z $SERVER > /dev/null 2>&1
wait $LOADGEN
callgrind_control -d $SERVER > /dev/null 2>&1
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
TOTAL=$(callgrind_annotate "$OUT.$SERVER.1" 2>/dev/null | grep -m1 "PROGRAM TOTALS" | awk '{gsub(",","",$1); print $1}')
DELIVERIES=$((CLIENTS * MESSAGES))
echo "$TRANSPORT: $TOTAL instructions for $DELIVERIES deliveries, $((TOTAL / DELIVERIES)) per delivery"
