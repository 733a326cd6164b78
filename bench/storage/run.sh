#!/bin/bash
# Storage benchmark (not a test): vol-create-as, vol-upload, vol-download, vol-clone and
# vol-wipe of one raw volume through berthd, each beside the plain host command doing the same
# to the same bytes on the same disk, in one run; prints MiB/s and the ratio (target: the
# Berth command at >= 0.9 x the plain one's throughput).
#
# Usage (after swift build):
#   bench/storage/run.sh [--bin DIR] [--before DIR] [--rounds N] [--lvm] [MiB]
#   --bin DIR     the berthd and berth to measure (default .build/debug; the output says which)
#   --before DIR  an older build's berthd and berth, timed the same way in the same run (their
#                 own berthd and state directory), rows marked "before"
#   --rounds N    each row is run N times (default 3), Berth and plain alternating, so a
#                 burst of load on this shared host hits both; the median is printed, with the
#                 spread of the N runs
#   --lvm         also a logical pool on a loop device (upload, download, clone, wipe of an LV)
#   MiB           the volume's size (default 1024)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/.build/debug
before=""
rounds=3
lvm=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --bin) bin=$(cd "$2" && pwd); shift 2 ;;
    --before) before=$(cd "$2" && pwd); shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --lvm) lvm=1; shift ;;
    *) break ;;
    esac
done
mib=${1:-1024}
for dir in "$bin" ${before:+"$before"}; do
    [[ -x $dir/berthd && -x $dir/berth ]] || { echo "no berthd/berth in $dir: run swift build first" >&2; exit 1; }
done
command -v qemu-img >/dev/null || { echo "qemu-img missing: scripts/install-host-deps qemu-utils" >&2; exit 1; }
state=$(mktemp -d /var/tmp/berth-bench-storage.XXXXXX)
daemons=()
group=""
loop=""
cleanup() {
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    if [[ -n $group ]]; then vgremove -q -f "$group" >/dev/null 2>&1 || true; fi
    if [[ -n $loop ]]; then pvremove -q "$loop" >/dev/null 2>&1 || true; losetup -d "$loop" 2>/dev/null || true; fi
    rm -rf "$state"
}
trap cleanup EXIT

# $1 a label, $2 its binaries: a berthd of its own, in state directory $state/$1.
start_daemon() {
    local dir=$state/$1
    mkdir -p "$dir"
    "$2/berthd" --state-dir "$dir" --listen none --media-listen none --log-level warning >"$dir/berthd.log" 2>&1 &
    daemons+=($!)
    for _ in $(seq 300); do [[ -S $dir/run/berthd.sock ]] && break; sleep 0.1; done
    # The streamed rows run the CLI as nobody, in the socket's group.
    chmod 755 "$state" "$dir"; chmod 711 "$dir/run"; chown root:65534 "$dir/run/berthd.sock"
}
builds=(new)
start_daemon new "$bin"
if [[ -n $before ]]; then builds+=(before); start_daemon before "$before"; fi
binary() { [[ $1 == new ]] && echo "$bin" || echo "$before"; }
# berth as root against build $1's berthd; the rest are its arguments.
berth() { local b=$1; shift; BERTH_STATE_DIR=$state/$b "$(binary "$b")/berth" "$@" >/dev/null; }
streamed() {
    setpriv --reuid=65534 --regid=65534 --clear-groups -- env HOME=/tmp BERTH_STATE_DIR="$state/$1" \
        "$(binary "$1")/berth" vol-upload vol "$state/source.bin" --pool default >/dev/null
}
plain=$state/plain
mkdir -p "$plain"
dd if=/dev/urandom of="$state/source.bin" bs=1M count="$mib" status=none
chmod 644 "$state/source.bin"
sync

now() { date +%s.%N; }
# Seconds taken by "$@" and the sync after it (what the command left to write counts).
timed() { local s; s=$(now); "$@"; sync; echo "$(now) - $s" | bc -l; }
# The median and the spread of seconds on stdin, as "median min max".
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "%s %s %s", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
rows=()
# $1 label, $2 Berth seconds (median min max), $3 plain label, $4 plain seconds (median min max)
row() {
    rows+=("$(awk -v l="$1" -v b="$2" -v p="$3" -v q="$4" -v m="$mib" 'BEGIN {
        split(b, x, " "); split(q, y, " ")
        printf "%-27s %7.1f MiB/s (%6.1f-%6.1f)   %-27s %7.1f MiB/s (%6.1f-%6.1f)   ratio %.2f",
            l, m / x[1], m / x[3], m / x[2], p, m / y[1], m / y[3], m / y[2], y[1] / x[1] }')")
}
# $1 label, $2 plain label, $3 a function timing the plain command, then for each build a
# function "$4 BUILD" timing Berth's; before each timing "$5 BUILD" (or "$5 plain") prepares,
# untimed. Rounds alternate: plain, then each build, N times.
measure() {
    local label=$1 plain_label=$2 plain_run=$3 berth_run=$4 prepare=$5 b
    declare -A seconds=()
    for _ in $(seq "$rounds"); do
        $prepare plain
        seconds[plain]+="$($plain_run) "
        for b in "${builds[@]}"; do
            $prepare "$b"
            seconds[$b]+="$($berth_run "$b") "
        done
    done
    local p
    p=$(tr ' ' '\n' <<<"${seconds[plain]}" | grep . | stats)
    for b in "${builds[@]}"; do
        local name=$label
        [[ $b == before ]] && name="$label (before)"
        row "$name" "$(tr ' ' '\n' <<<"${seconds[$b]}" | grep . | stats)" "$plain_label" "$p"
    done
}

# Each prepare puts the target in the state the row is about, outside the timing.
fresh() {
    if [[ $1 == plain ]]; then rm -f "$plain/target.img"; sync; return; fi
    berth "$1" vol-delete vol --pool default 2>/dev/null || true
    berth "$1" vol-create-as default vol "${mib}M"
    sync
}
full() {
    if [[ $1 == plain ]]; then cp "$state/source.bin" "$plain/target.img"; sync; return; fi
    berth "$1" vol-upload vol "$state/source.bin" --pool default
    sync
}
# (Only the file of the build about to run: the others are compared after the rounds.)
no_download() { if [[ $1 == plain ]]; then rm -f "$plain/downloaded.bin"; else rm -f "$state/downloaded-$1.bin"; fi; sync; }
no_clone() {
    rm -f "$plain/cloned.img"
    [[ $1 == plain ]] || berth "$1" vol-delete copy --pool default 2>/dev/null || true
    sync
}
nothing() { :; }

create_plain() { timed qemu-img create -q -f raw "$plain/target.img" "${mib}M"; }
create_berth() { berth "$1" vol-delete vol --pool default 2>/dev/null || true; timed berth "$1" vol-create-as default vol "${mib}M"; }
measure vol-create-as "qemu-img create -f raw" create_plain create_berth nothing

cp_plain() { timed cp "$state/source.bin" "$plain/target.img"; }
upload_berth() { timed berth "$1" vol-upload vol "$state/source.bin" --pool default; }
measure "vol-upload into empty" "cp FILE NEW" cp_plain upload_berth fresh

# Replacing a full volume: berthd keeps the old content until the new one is whole, so the
# like-for-like plain copy is cp to a temporary name + mv over the file.
replace_plain() { timed sh -c 'cp "$1" "$2.tmp" && mv "$2.tmp" "$2"' sh "$state/source.bin" "$plain/target.img"; }
measure "vol-upload replacing" "cp FILE TMP && mv TMP FILE" replace_plain upload_berth full
# Streamed (what a remote client, or a local user who is not root, gets): the CLI as nobody
# (in the socket's group) over the unix socket.
streamed_berth() { timed streamed "$1"; }
measure "vol-upload streamed, repl." "cp FILE TMP && mv TMP FILE" replace_plain streamed_berth full

dd_plain() { timed dd if="$plain/target.img" of="$plain/downloaded.bin" bs=1M status=none; }
download_berth() { timed berth "$1" vol-download default/vol "$state/downloaded-$1.bin"; }
measure vol-download "dd bs=1M" dd_plain download_berth no_download
for b in "${builds[@]}"; do
    cmp -s "$state/downloaded-$b.bin" "$state/source.bin" || echo "WARNING: downloaded bytes differ ($b)" >&2
    no_download "$b"
done

convert_plain() { timed qemu-img convert -f raw -O raw "$plain/target.img" "$plain/cloned.img"; }
clone_berth() { timed berth "$1" vol-clone vol copy --pool default; }
measure vol-clone "qemu-img convert -f raw -O raw" convert_plain clone_berth no_clone
cp_clone_plain() { timed cp "$plain/target.img" "$plain/cloned.img"; }
measure vol-clone "cp" cp_clone_plain clone_berth no_clone

zero_plain() { timed dd if=/dev/zero of="$plain/target.img" bs=1M count="$mib" conv=notrunc status=none; }
wipe_berth() { timed berth "$1" vol-wipe vol --pool default; }
measure vol-wipe "dd if=/dev/zero" zero_plain wipe_berth full

if [[ $lvm == 1 ]]; then
    # A volume group on a loop device over a file on the same disk; the LV's bytes are its
    # range of that file (no device-mapper here). The plain commands do the same to a range of
    # a file as large (not the PV itself, whose ranges are Berth's LVs).
    group=berthbench$$
    truncate -s $((3 * mib + 64))M "$state/pv.img" "$plain/pv.img"
    loop=$(losetup -f --show "$state/pv.img")
    pvcreate -q "$loop" >/dev/null 2>&1
    vgcreate -q "$group" "$loop" >/dev/null 2>&1
    builds=(new)  # a build from before LV content operations refuses them
    berth new pool-define-as lvm logical --source-name "$group"
    berth new pool-start lvm
    lv_fresh() {
        [[ $1 == plain ]] && return
        berth "$1" vol-delete lv --pool lvm 2>/dev/null || true
        berth "$1" vol-delete lvcopy --pool lvm 2>/dev/null || true
        berth "$1" vol-create-as lvm lv "${mib}M"
        sync
    }
    lv_upload() { timed berth "$1" vol-upload lv "$state/source.bin" --pool lvm; }
    dd_range_plain() { timed dd if="$state/source.bin" of="$plain/pv.img" bs=1M seek=$((3 * mib / 2)) conv=notrunc status=none; }
    measure "vol-upload (LV)" "dd of=PV seek=OFFSET" dd_range_plain lv_upload lv_fresh
    lv_download() { timed berth "$1" vol-download lvm/lv "$state/downloaded-$1.bin"; }
    dd_range_read() { timed dd if="$plain/pv.img" of="$plain/downloaded.bin" bs=1M skip=$((3 * mib / 2)) count="$mib" status=none; }
    measure "vol-download (LV)" "dd if=PV skip=OFFSET" dd_range_read lv_download no_download
    for b in "${builds[@]}"; do
        cmp -s "$state/downloaded-$b.bin" "$state/source.bin" || echo "WARNING: downloaded LV bytes differ ($b)" >&2
        no_download "$b"
    done
    lv_clone() { berth "$1" vol-delete lvcopy --pool lvm 2>/dev/null || true; sync; timed berth "$1" vol-clone lv lvcopy --pool lvm; }
    dd_range_copy() { timed dd if="$plain/pv.img" of="$plain/pv.img" bs=1M skip=$((3 * mib / 2)) seek=$((mib / 4)) count="$mib" conv=notrunc status=none; }
    measure "vol-clone (LV)" "dd PV range to PV range" dd_range_copy lv_clone nothing
fi

echo "Storage benchmark, $mib MiB raw volume, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), state on $(df --output=source "$state" | tail -1)"
echo "binaries: $bin${before:+ (before: $before)}; median of $rounds alternating runs (spread in parentheses)"
printf '%s\n' "${rows[@]}"
