#!/usr/bin/env bash
# The kernel's share of send-to-deliver latency at 1,000 subscribers and 100
# messages a second on this machine: no server, no client library, one send
# per socket per message (see latency_floor.c; docs/measurements.md, "The
# latency floor"). WRITER_NS and READER_NS add busy work per send and per
# delivery; REQUEST_BYTES > 0 sends a request back after each message, as a
# long poll does. Needs gcc and two cores.
#
#   benches/profile/latency_floor.sh [N=1000] [MESSAGES=1000] [PERIOD_US=10000] [WRITER_NS=0] [READER_NS=0] [REQUEST_BYTES=0]
set -euo pipefail
out=${TMPDIR:-/tmp}/chat-latency-floor
gcc -O2 -Wall -pthread "$(dirname "$0")/latency_floor.c" -o "$out"
exec "$out" "${1:-1000}" "${2:-1000}" "${3:-10000}" "${4:-0}" "${5:-0}" "${6:-0}"
