#!/usr/bin/env bash
# Where an idle connection's heap goes: the release chat-demo under
# valgrind's massif, CLIENTS idle subscribers of TRANSPORT from loadgen (one
# message sent), then the peak snapshot's largest allocation sites, one line
# each (docs/measurements.md, "Where the memory of a connection goes").
#
#   cargo build --release -p chat-demo -p chat-loadgen
#   benches/profile/heap.sh sse            # or websocket, stream, longpoll
#   BIN=/some/other/build CLIENTS=500 benches/profile/heap.sh websocket
set -euo pipefail
TRANSPORT=${1:?usage: heap.sh TRANSPORT}
BIN=${BIN:-$(dirname "$0")/../../target/release}
CLIENTS=${CLIENTS:-1000}
PORT=${PORT:-18790}
OUT=${OUT:-/tmp/chat-heap-$TRANSPORT}
valgrind --tool=massif --massif-out-file="$OUT" "$BIN/chat-demo" \
  --addr "127.0.0.1:$PORT" --workers 1 --no-client-limits > "$OUT.server" 2>&1 &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do grep -q "listening on" "$OUT.server" && break; sleep 0.5; done
"$BIN/loadgen" --url "http://127.0.0.1:$PORT" --transport "$TRANSPORT" \
  --clients "$CLIENTS" --rate 1 --messages 1 --connect-rate 500 --drain-timeout 60 \
  > "$OUT.loadgen" 2>/dev/null
kill -TERM $SERVER; wait $SERVER || true
trap - EXIT
python3 "$(dirname "$0")/massif_top.py" "$OUT" "$CLIENTS"
