#!/bin/bash
# Networks benchmark (not a test): one guest with a user-mode NIC and a tap on a nat network,
# in one run: TCP throughput guest -> host over each, and the time from `berth start` to each
# NIC's DHCP lease. Prints the ratios. Runs berthd and the guest in a network namespace of its
# own (nothing touches the machine's interfaces, routes or nft tables); in that namespace only,
# it removes Berth's two nft tables once the network is up, so the host-side receivers
# (ports 5001/5002) are reachable from both NICs.
#
# Usage (as root, after swift build and fixtures/guest/build.sh): bench/network/run.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-32}
bin=.build/debug
guest=fixtures/out/guest
[[ -x $bin/berthd && -f $guest/vmlinuz ]] || { echo "run swift build and fixtures/guest/build.sh first" >&2; exit 1; }
ns=berth-bench-$$
state=/tmp/berth-bench-$$
mkdir -p "$state"
cleanup() {
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$state"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
ip netns exec "$ns" "$bin/berthd" --state-dir "$state" --listen none --media-listen 127.0.0.1:8001 \
    --accel tcg --log-level warning >"$state/berthd.log" 2>&1 &
export BERTH_STATE_DIR=$state
for _ in $(seq 100); do [[ -S $state/run/berthd.sock ]] && break; sleep 0.1; done
berth() { "$bin/berth" "$@"; }
echo '{"name": "bench", "mode": "nat", "address": "10.200.0.1/24"}' >"$state/net.json"
berth net-define "$state/net.json" >/dev/null
berth net-start bench >/dev/null
for t in $(ip netns exec "$ns" nft list tables | awk '{print $3}' | grep -E '^berth(d|net)_'); do
    ip netns exec "$ns" nft delete table ip "$t" 2>/dev/null || ip netns exec "$ns" nft delete table inet "$t"
done
ip netns exec "$ns" busybox nc -l -p 5001 >/dev/null &
ip netns exec "$ns" busybox nc -l -p 5002 >/dev/null &
count=$((mib * 16))
send() { # $1 label, $2 address, $3 port
    echo "s=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=64k count=$count 2>/dev/null | nc -w 10 $2 $3; e=\$(cut -d' ' -f1 /proc/uptime); echo BENCH-$1 \$s \$e"
}
run="sleep 1; $(send user 10.0.2.2 5001); $(send tap 10.200.0.1 5002)"
cat >"$state/guest.json" <<JSON
{"name": "bench-guest", "memory": 256, "kernel": "$PWD/$guest/vmlinuz", "initrd": "$PWD/$guest/initrd.img",
 "cmdline": "console=ttyS0 berth.net=dhcp berth.run=\"$run\"",
 "nics": [{"mode": "user"}, {"network": "bench"}]}
JSON
berth define "$state/guest.json" >/dev/null
start=$(date +%s.%N)
berth start bench-guest >/dev/null
log=$state/logs/bench-guest.log
lease_user="" lease_tap=""
for _ in $(seq 1800); do
    now=$(date +%s.%N)
    [[ -z $lease_user ]] && grep -q "BERTH-GUEST-NET eth0" "$log" 2>/dev/null && lease_user=$(echo "$now - $start" | bc)
    [[ -z $lease_tap ]] && grep -q "BERTH-GUEST-NET eth1" "$log" 2>/dev/null && lease_tap=$(echo "$now - $start" | bc)
    grep -q "BERTH-GUEST-RUN-END" "$log" 2>/dev/null && break
    sleep 0.1
done
grep "BERTH-GUEST-NET\|BENCH-" "$log" | tr -d '\r'
read -r _ us ue < <(grep -a "BENCH-user" "$log" | tr -d '\r')
read -r _ ts te < <(grep -a "BENCH-tap" "$log" | tr -d '\r')
user_mbs=$(echo "scale=2; $mib / ($ue - $us)" | bc)
tap_mbs=$(echo "scale=2; $mib / ($te - $ts)" | bc)
echo "throughput guest -> host, $mib MiB: user-mode $user_mbs MiB/s, tap on nat network $tap_mbs MiB/s," \
    "tap/user = $(echo "scale=2; $tap_mbs / $user_mbs" | bc)"
echo "berth start -> DHCP lease: user-mode NIC ${lease_user}s, tap NIC ${lease_tap}s (both in one boot; TCG)"
