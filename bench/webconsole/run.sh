#!/bin/bash
# Web console benchmark (not a test): berthd's WebSocket proxy against connecting to QEMU's
# sockets directly, one guest, one run, side by side: VNC update latency and full-screen frame
# rate (/v1/domains/NAME/vnc vs the display's unix socket), serial round trip
# (/v1/domains/NAME/console/ws vs the console socket). berthd listens on 127.0.0.1 inside a
# network namespace of the bench's own.
#
# Usage (as root, after swift build and fixtures/guest/build.sh): bench/webconsole/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-200}
source bench/namespace.sh
ip netns exec "$ns" "$bin/berthd" --state-dir "$state" --listen 127.0.0.1:8000 --media-listen none \
    --accel tcg --log-level warning >"$state/berthd.log" 2>&1 &
disown
export BERTH_STATE_DIR=$state
for _ in $(seq 100); do [[ -S $state/run/berthd.sock ]] && break; sleep 0.1; done
berth() { "$bin/berth" "$@"; }
cat >"$state/bench.json" <<JSON
{"name": "bench", "memory": 256, "machine": "pc", "kernel": "$PWD/$guest/vmlinuz", "initrd": "$PWD/$guest/initrd.img",
 "cmdline": "console=ttyS0", "graphics": {"kind": "vnc"}}
JSON
berth define "$state/bench.json" >/dev/null
berth start bench >/dev/null
for _ in $(seq 1200); do grep -q "berth-guest# " "$state/logs/bench.log" 2>/dev/null && break; sleep 0.1; done
sleep 2
display=$(berth domdisplay bench)
console=$(dirname "${display#vnc+unix://}")/../console.sock
ip netns exec "$ns" python3 bench/webconsole/client.py http://127.0.0.1:8000 "$(cat "$state/api-token")" bench \
    "${display#vnc+unix://}" "$console" "$rounds"
berth destroy bench >/dev/null
