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
source bench/namespace.sh
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
count=$((mib * 16))
bytes=$((mib * 1048576))
send() { # $1 label, $2 address, $3 port
    echo "s=\$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=65536 count=$count 2>/dev/null | nc -w 10 $2 $3; r=\$?; e=\$(cut -d' ' -f1 /proc/uptime); echo BENCH-$1 \$s \$e \$r"
}
# One boot with both NICs; `first` (user or tap) is eth0, whose lease is timed (the guest's
# init asks for leases one NIC after another, so only the first NIC's time is comparable).
one_run() {
    local first=$1 port=$2 nics name=bench-$1
    ip netns exec "$ns" sh -c "sleep 600 | busybox nc -l -p $port | wc -c >$state/received-$first-user" &
    ip netns exec "$ns" sh -c "sleep 600 | busybox nc -l -p $((port + 1)) | wc -c >$state/received-$first-tap" &
    local run="sleep 1; $(send user 10.0.2.2 "$port"); $(send tap 10.200.0.1 $((port + 1)))"
    if [[ $first == user ]]; then nics='{"mode": "user"}, {"network": "bench", "ip": "10.200.0.50"}'; else nics='{"network": "bench", "ip": "10.200.0.51"}, {"mode": "user"}'; fi
    cat >"$state/$name.json" <<JSON
{"name": "$name", "memory": 256, "kernel": "$PWD/$guest/vmlinuz", "initrd": "$PWD/$guest/initrd.img",
 "cmdline": "console=ttyS0 berth.net=dhcp berth.run=\"$run\"", "nics": [$nics]}
JSON
    berth define "$state/$name.json" >/dev/null
    local start lease="" log=$state/logs/$name.log
    start=$(date +%s.%N)
    berth start "$name" >/dev/null
    for _ in $(seq 1800); do
        [[ -z $lease ]] && grep -q "BERTH-GUEST-NET eth0" "$log" 2>/dev/null && lease=$(echo "$(date +%s.%N) - $start" | bc)
        grep -q "BERTH-GUEST-RUN-END" "$log" 2>/dev/null && break
        sleep 0.05
    done
    berth destroy "$name" >/dev/null
    sleep 1
    local us ue ur ts te tr
    read -r _ us ue ur < <(grep -a "^BENCH-user" "$log" | tr -d '\r')
    read -r _ ts te tr < <(grep -a "^BENCH-tap" "$log" | tr -d '\r')
    [[ $ur == 0 && $tr == 0 && $(cat "$state/received-$first-user") == "$bytes" && $(cat "$state/received-$first-tap") == "$bytes" ]] ||
        { echo "a transfer failed (nc status user $ur, tap $tr); log: $log" >&2; exit 1; }
    eval "lease_$first=$lease user_mbs_$first=$(echo "scale=2; $mib / ($ue - $us)" | bc) tap_mbs_$first=$(echo "scale=2; $mib / ($te - $ts)" | bc)"
}
one_run user 5001
one_run tap 5003
user_mbs=$(echo "scale=2; ($user_mbs_user + $user_mbs_tap) / 2" | bc)
tap_mbs=$(echo "scale=2; ($tap_mbs_user + $tap_mbs_tap) / 2" | bc)
echo "throughput guest -> host, $mib MiB, same guest, mean of 2 boots:" \
    "user-mode $user_mbs MiB/s ($user_mbs_user, $user_mbs_tap), tap on a nat network $tap_mbs MiB/s ($tap_mbs_user, $tap_mbs_tap);" \
    "tap/user = $(echo "scale=2; $tap_mbs / $user_mbs" | bc)"
echo "berth start -> first NIC's DHCP lease: user-mode ${lease_user}s, tap on a nat network ${lease_tap}s;" \
    "user/tap = $(echo "scale=2; $lease_user / $lease_tap" | bc) (TCG)"
