#!/usr/bin/env bash
# Benchmark: berth-bootloader against Xen's PyGRUB (xen-utils-4.17), whole process as a
# user runs it, on the same ext4 image (/boot/grub/grub.cfg, 14 MB kernel, 1 MB initrd).
# Prints median wall times, ratios, and bytes each reads from the image (strace).
# Needs: xen-utils-4.17 hyperfine strace e2fsprogs (apt-get install --no-install-recommends ...).
# Usage: bench/bootloader/run.sh [RUNS]   (from anywhere; builds berth-bootloader in release)
set -euo pipefail
runs=${1:-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pygrub=/usr/lib/xen-4.17/bin/pygrub
for tool in hyperfine strace mke2fs python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install --no-install-recommends hyperfine strace e2fsprogs python3" >&2; exit 1; }
done
[ -x "$pygrub" ] || { echo "missing $pygrub: apt-get install --no-install-recommends xen-utils-4.17" >&2; exit 1; }

# Two builds: the default (dynamically linked Swift runtime) and --static-swift-stdlib,
# which saves the dynamic loader's work at every start.
(cd "$root" && BERTH_ONLY=BerthBoot swift build -c release --product berth-bootloader >/dev/null)
(cd "$root" && BERTH_ONLY=BerthBoot swift build -c release --product berth-bootloader --static-swift-stdlib \
    --scratch-path "$root/.build-bench-static" >/dev/null)
berth="$root/.build/release/berth-bootloader"
static="$root/.build-bench-static/release/berth-bootloader"

work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$here/make-image.sh" "$work" >/dev/null
image="$work/disk.img"
mkdir -m 0700 "$work/out-berth" "$work/out-pygrub" "$work/out-static"

# PyGRUB logs every GRUB2 directive it does not know to stderr; both get stderr discarded.
declare -A commands
commands[list,pygrub]="$pygrub --list-entries $image"
commands[list,berth]="$berth --list-entries $image"
commands[notreally,pygrub]="$pygrub -q -n $image"
commands[notreally,berth]="$berth -q -n $image"
commands[extract,pygrub]="$pygrub -q --output-format=simple0 --output-directory=$work/out-pygrub $image"
commands[extract,berth]="$berth -q --output-format=simple0 --output-directory=$work/out-berth $image"
commands[list,static]="$static --list-entries $image"
commands[notreally,static]="$static -q -n $image"
commands[extract,static]="$static -q --output-format=simple0 --output-directory=$work/out-static $image"

# Same answer first: the default entry's kernel and initrd must be byte-identical.
$pygrub -q --output-format=simple --output-directory="$work/out-pygrub" "$image" 2>/dev/null > "$work/pygrub.out"
$berth -q --output-format=simple --output-directory="$work/out-berth" "$image" > "$work/berth.out"
pk=$(sed -n 's/^kernel //p' "$work/pygrub.out"); bk=$(sed -n 's/^kernel //p' "$work/berth.out")
pr=$(sed -n 's/^ramdisk //p' "$work/pygrub.out"); br=$(sed -n 's/^ramdisk //p' "$work/berth.out")
cmp -s "$pk" "$bk" && cmp -s "$pr" "$br" || { echo "kernels or initrds differ between pygrub and berth" >&2; exit 1; }
[ "$(sed -n 's/^args //p' "$work/pygrub.out")" = "$(sed -n 's/^args //p' "$work/berth.out")" ] || { echo "args differ" >&2; exit 1; }
echo "same kernel, initrd and args from both ($(stat -c %s "$bk") + $(stat -c %s "$br") bytes)"

median() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
printf '\n%-10s %10s %10s %7s %11s %7s %13s %12s\n' mode "pygrub ms" "berth ms" ratio "static ms" ratio "pygrub bytes" "berth bytes"
for mode in list notreally extract; do
    declare -A ms bytes
    for tool in pygrub berth static; do
        cmd=${commands[$mode,$tool]}
        out="$work/out-$tool"
        hyperfine -N --style none --warmup 3 --runs "$runs" --prepare "find $out -type f -delete" \
            --export-json "$work/$mode-$tool.json" "$cmd" >/dev/null 2>&1 || \
        hyperfine --style none --warmup 3 --runs "$runs" --prepare "find $out -type f -delete" \
            --export-json "$work/$mode-$tool.json" "$cmd 2>/dev/null" >/dev/null
        ms[$tool]=$(median "$work/$mode-$tool.json")
        find "$out" -type f -delete
        strace -f -qq -o "$work/$mode-$tool.strace" -e trace=openat,open,read,pread64,readv,preadv,close,dup,dup2,dup3 -e signal=none \
            $cmd >/dev/null 2>&1
        bytes[$tool]=$(python3 "$here/bytes-read.py" "$work/$mode-$tool.strace" "$image" | cut -d' ' -f1)
        find "$out" -type f -delete
    done
    ratio=$(python3 -c "print('%.1fx' % (${ms[pygrub]} / ${ms[berth]}))")
    sratio=$(python3 -c "print('%.1fx' % (${ms[pygrub]} / ${ms[static]}))")
    printf '%-10s %10s %10s %7s %11s %7s %13s %12s\n' "$mode" "${ms[pygrub]}" "${ms[berth]}" "$ratio" "${ms[static]}" "$sratio" "${bytes[pygrub]}" "${bytes[berth]}"
done
echo
echo "median of $runs runs each (hyperfine -N, after 3 warm-up runs; page cache warm); ratio = pygrub / berth"
echo "static = berth-bootloader built with --static-swift-stdlib; bytes = read(2)/pread(2) from the image (strace)"
