#!/usr/bin/env bash
# virtio-balloon free page reporting, side by side: an idle test guest's QEMU footprint with
# and without `-device virtio-balloon-…,free-page-reporting=on` (raw QEMU, TCG, tb-size=32 as
# Berth picks for small guests). Berth does not add the balloon by default: see the figures
# in docs/ARCHITECTURE.md (Decisions) for why.
#   bench/density/balloon.sh [MEMORY_MIB...]       (default: 128 256; SETTLE=seconds after init)
# Needs the test guest built with virtio_balloon (fixtures/guest/build.sh).
set -euo pipefail
guest="${BERTH_FIXTURES:-$(cd "$(dirname "$0")/../.." && pwd)/fixtures/out}/guest"
grep -q virtio_balloon "$guest/modules.txt" || { echo "rebuild the guest: fixtures/guest/build.sh" >&2; exit 1; }

one() { # machine memory device → one line of figures
  local machine=$1 memory=$2 device=$3 work pid ram rss pss
  work=$(mktemp -d /tmp/balloon.XXXX)
  local args=(-M "$machine" -accel tcg,tb-size=32 -m "$memory" -smp 1 -kernel "$guest/vmlinuz"
    -initrd "$guest/initrd.img" -nodefaults -no-user-config -display none
    -chardev "file,id=c0,path=$work/log" -serial chardev:c0 -append "console=ttyS0 berth.mode=stay")
  [[ $device == none ]] || args+=(-device "$device")
  qemu-system-x86_64 "${args[@]}" 2>/dev/null &
  pid=$!
  for _ in $(seq 1500); do grep -q BERTH-GUEST-READY "$work/log" 2>/dev/null && break; sleep 0.2; done
  sleep "${SETTLE:-20}"
  # The guest's RAM is the one mapping of exactly its size.
  ram=$(awk -v size=$((memory * 1024)) '/^Size:/ {s = $2} /^Rss:/ && s == size {print int($2 / 1024)}' "/proc/$pid/smaps")
  rss=$(awk '/^Rss:/ {print int($2 / 1024)}' "/proc/$pid/smaps_rollup")
  pss=$(awk '/^Pss:/ {print int($2 / 1024)}' "/proc/$pid/smaps_rollup")
  local reporting=no
  grep -q "Free page reporting enabled" "$work/log" && reporting=yes
  printf '  %-16s %4s MiB  %-44s guest RAM resident %4s MiB  Rss %4s MiB  Pss %4s MiB  (guest reports: %s)\n' \
    "$machine" "$memory" "$device" "$ram" "$rss" "$pss" "$reporting"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}

memories=("$@")
[[ ${#memories[@]} -gt 0 ]] || memories=(128 256)
for memory in "${memories[@]}"; do
  for machine in pc microvm,acpi=on; do
    suffix=pci
    [[ $machine == microvm* ]] && suffix=device
    # Both at once: the same host load for each side.
    one "$machine" "$memory" none &
    one "$machine" "$memory" "virtio-balloon-$suffix,free-page-reporting=on" &
    wait
  done
done
