#!/bin/bash
# Storage benchmark (not a test): vol-create-as, vol-upload, vol-download, vol-clone and
# vol-wipe of one raw volume through berthd, each beside the plain host command doing the same
# to the same bytes on the same disk, in one run; prints MiB/s and the ratio (target: the
# Berth command at >= 0.9 x the plain one's throughput).
#
# Usage (after swift build): bench/storage/run.sh [MiB] [BEFORE_DIR]   (default 1024)
# With BEFORE_DIR (a directory holding an older build's berthd and berth), vol-upload is also
# timed with those binaries (their own berthd and state directory), before/after side by side,
# each run alternately three times (median).
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}
before=${2:-}
bin=$PWD/.build/debug
[[ -x $bin/berthd && -x $bin/berth ]] || { echo "run swift build first" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img missing: scripts/install-host-deps qemu-utils" >&2; exit 1; }
state=$(mktemp -d /var/tmp/berth-bench-storage.XXXXXX)
cleanup() {
    [[ -n ${daemon:-} ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    [[ -n ${old_daemon:-} ]] && kill "$old_daemon" 2>/dev/null && wait "$old_daemon" 2>/dev/null
    rm -rf "$state"
}
trap cleanup EXIT
"$bin/berthd" --state-dir "$state" --listen none --media-listen none --log-level warning >"$state/berthd.log" 2>&1 &
daemon=$!
export BERTH_STATE_DIR=$state
for _ in $(seq 200); do [[ -S $state/run/berthd.sock ]] && break; sleep 0.1; done
berth() { "$bin/berth" "$@" >/dev/null; }
images=$state/images
plain=$state/plain
mkdir -p "$plain"
dd if=/dev/urandom of="$state/source.bin" bs=1M count="$mib" status=none
sync

now() { date +%s.%N; }
rows=()
# $1 label, $2 Berth seconds, $3 plain label, $4 plain seconds
row() {
    rows+=("$(awk -v l="$1" -v b="$2" -v p="$3" -v q="$4" -v m="$mib" 'BEGIN {
        printf "%-20s %8.1f MiB/s   %-32s %8.1f MiB/s   ratio %.2f", l, m / b, p, m / q, q / b }')")
}
timed() { local s; s=$(now); "$@"; sync; echo "$(now) - $s" | bc -l; }

b=$(timed berth vol-create-as default vol "${mib}M")
p=$(timed qemu-img create -q -f raw "$plain/created.img" "${mib}M")
row vol-create-as "$b" "qemu-img create -f raw" "$p"

b=$(timed berth vol-upload vol "$state/source.bin" --pool default)
p=$(timed cp "$state/source.bin" "$plain/uploaded.img")
row vol-upload "$b" "cp FILE" "$p"

# Replacing a full volume: berthd keeps the old content until the new one is whole, so the
# like-for-like plain copy is cp to a temporary name + mv over the file (rm+cp frees the old
# blocks first and may reuse them; the volume's new blocks cannot be the old ones).
replace_plain() { timed sh -c 'cp "$1" "$2.tmp" && mv "$2.tmp" "$2"' sh "$state/source.bin" "$plain/uploaded.img"; }
rm_cp_plain() { timed sh -c 'rm -f "$1" && cp "$2" "$1"' sh "$plain/uploaded.img" "$state/source.bin"; }
b=$(timed berth vol-upload vol "$state/source.bin" --pool default)
p=$(replace_plain)
row "vol-upload replacing" "$b" "cp FILE TMP && mv TMP FILE" "$p"
p2=$(rm_cp_plain)
row "vol-upload replacing" "$b" "rm FILE && cp FILE" "$p2"
# Streamed (what a remote client, or a local user who is not root, gets): the CLI as nobody
# (in the socket's group) over the unix socket.
chmod 755 "$state"; chmod 711 "$state/run"; chmod 644 "$state/source.bin"
chown root:65534 "$state/run/berthd.sock"
b=$(timed sh -c 'setpriv --reuid=65534 --regid=65534 --clear-groups -- env HOME=/tmp BERTH_STATE_DIR="$1" "$2/berth" vol-upload vol "$1/source.bin" --pool default >/dev/null' sh "$state" "$bin")
p=$(replace_plain)
row "vol-upload streamed" "$b" "cp FILE TMP && mv TMP FILE" "$p"
p2=$(rm_cp_plain)
row "vol-upload streamed" "$b" "rm FILE && cp FILE" "$p2"

b=$(timed berth vol-download default/vol "$state/downloaded.bin")
p=$(timed dd if="$images/vol" of="$plain/downloaded.bin" bs=1M status=none)
row vol-download "$b" "dd bs=1M" "$p"
cmp -s "$state/downloaded.bin" "$state/source.bin" || echo "WARNING: downloaded bytes differ" >&2

b=$(timed berth vol-clone vol copy --pool default)
p=$(timed qemu-img convert -f raw -O raw "$images/vol" "$plain/cloned.img")
row vol-clone "$b" "qemu-img convert -f raw -O raw" "$p"
p2=$(timed cp "$images/vol" "$plain/cloned-cp.img")
row vol-clone "$b" "cp" "$p2"

b=$(timed berth vol-wipe vol --pool default)
p=$(timed dd if=/dev/zero of="$plain/uploaded.img" bs=1M count="$mib" conv=notrunc status=none)
row vol-wipe "$b" "dd if=/dev/zero" "$p"

if [[ -n $before ]]; then
    old=$state/before
    mkdir -p "$old"
    "$before/berthd" --state-dir "$old" --listen none --media-listen none --log-level warning >"$old/berthd.log" 2>&1 &
    old_daemon=$!
    for _ in $(seq 200); do [[ -S $old/run/berthd.sock ]] && break; sleep 0.1; done
    old_berth() { BERTH_STATE_DIR=$old "$before/berth" "$@" >/dev/null; }
    old_berth vol-create-as default vol "${mib}M"
    median() { sort -n | sed -n 2p; }
    olds=() news=() cps=()
    for _ in 1 2 3; do
        olds+=("$(timed old_berth vol-upload vol "$state/source.bin" --pool default)")
        news+=("$(timed berth vol-upload vol "$state/source.bin" --pool default)")
        # Each upload replaces a full volume (its old blocks freed, discarded on this disk):
        # cp pays the same by removing its previous copy inside the timing.
        cps+=("$(timed sh -c 'rm -f "$1" && cp "$2" "$1"' sh "$plain/uploaded.img" "$state/source.bin")")
    done
    o=$(printf '%s\n' "${olds[@]}" | median)
    n=$(printf '%s\n' "${news[@]}" | median)
    c=$(printf '%s\n' "${cps[@]}" | median)
    rows+=("$(awk -v o="$o" -v n="$n" -v c="$c" -v m="$mib" 'BEGIN {
        printf "vol-upload before %8.1f MiB/s (ratio %.2f)   after %8.1f MiB/s (ratio %.2f)   rm+cp FILE %8.1f MiB/s   (median of 3, alternating, each replacing a full volume)",
            m / o, c / o, m / n, c / n, m / c }')")
fi

echo "Storage benchmark, $mib MiB raw volume, $(nproc) CPUs, state on $(df --output=source "$state" | tail -1)"
printf '%s\n' "${rows[@]}"
