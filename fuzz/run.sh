#!/usr/bin/env bash
# Runs Berth's libFuzzer targets for a bounded time each.
# Usage: fuzz/run.sh [TARGET] [SECONDS]   e.g. fuzz/run.sh Menus 60   (default: every target, 30 s)
#
# Each fuzz/targets/NAME.swift names in its header
#   // modules: BerthDisk BerthBoot     the modules whose sources are compiled with it
#   // corpus: DIR|GLOB [...]           seeds, relative to the package root: directories or file globs
# and fuzz/targets/NAME.dict, if present, is passed as the libFuzzer dictionary (-dict=).
# The modules' sources and the target are compiled as ONE module (imports of Berth modules
# are stripped from a copy of the sources), with -sanitize=fuzzer,address. Not run in CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-}
seconds=${2:-30}
work="$root/.build-fuzz"
mkdir -p "$work"

targets=()
if [ -n "$target" ]; then
    [ -f "$root/fuzz/targets/$target.swift" ] || { echo "no fuzz/targets/$target.swift" >&2; exit 2; }
    targets=("$root/fuzz/targets/$target.swift")
else
    targets=("$root"/fuzz/targets/*.swift)
fi

status=0
for file in "${targets[@]}"; do
    name=$(basename "$file" .swift)
    modules=$(sed -n 's|^// modules:[[:space:]]*||p' "$file" | head -1)
    corpus=$(sed -n 's|^// corpus:[[:space:]]*||p' "$file" | head -1)
    src="$work/$name-src"
    rm -rf "$src"
    mkdir -p "$src"
    for module in $modules; do
        for f in "$root/Sources/$module"/*.swift; do
            # One module: drop `import BerthX` lines, keep everything else byte for byte.
            sed -E 's/^(@testable )?import Berth[A-Za-z]+$//' "$f" > "$src/$module-$(basename "$f")"
        done
    done
    sed -E 's/^(@testable )?import Berth[A-Za-z]+$//' "$file" > "$src/zz-$name.swift"
    # `// support: NAME ...` adds fuzz/support/NAME.swift (code several targets share).
    for support in $(sed -n 's|^// support:[[:space:]]*||p' "$file" | head -1); do
        cp "$root/fuzz/support/$support.swift" "$src/zy-$support.swift"
    done
    binary="$work/fuzz-$name"
    echo "== $name: building ($modules)"
    swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name "Fuzz$name" "$src"/*.swift -o "$binary"

    live="$work/corpus-$name"
    mkdir -p "$live"
    # A corpus entry is a directory (passed to libFuzzer as read-only seeds) or a file glob
    # (matching files are copied into the live corpus, since libFuzzer runs loose files once).
    seeds=()
    missing=()
    for pattern in $corpus; do
        shopt -s nullglob
        matches=("$root"/$pattern)
        shopt -u nullglob
        [ ${#matches[@]} -eq 0 ] && missing+=("$pattern")
        for m in "${matches[@]}"; do
            if [ -d "$m" ]; then seeds+=("$m"); else cp -n "$m" "$live/" 2>/dev/null || true; fi
        done
    done
    [ ${#missing[@]} -gt 0 ] && echo "== $name: no seeds at ${missing[*]} (build the fixtures first; fuzzing without them)"
    artifacts="$work/crashes-$name/"
    mkdir -p "$artifacts"
    before=$(find "$artifacts" -type f | wc -l)
    dict=()
    [ -f "$root/fuzz/targets/$name.dict" ] && dict=("-dict=$root/fuzz/targets/$name.dict")
    # Foundation's XMLParser leaks the CFError it makes for every libxml2 parse error (72 bytes,
    # inside FoundationXML, not Berth): leak checks would stop LibvirtXML at its first bad input.
    leaks=()
    asan=${ASAN_OPTIONS:-}
    if [ "$name" = LibvirtXML ]; then leaks=("-detect_leaks=0"); asan="detect_leaks=0${asan:+:$asan}"; fi
    echo "== $name: fuzzing for ${seconds}s (seeds: ${corpus:-none}; dictionary: ${dict[*]:-none}${leaks[*]:+; leak checks off})"
    set +e
    # Swift's own crash backtracer races ASan's report; let libFuzzer see the crash.
    ASAN_OPTIONS=$asan SWIFT_BACKTRACE=enable=no "$binary" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        "-artifact_prefix=$artifacts" "${dict[@]}" "${leaks[@]}" "$live" "${seeds[@]}" > "$work/$name.log" 2>&1
    rc=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$work/$name.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec:[[:space:]]*//p' "$work/$name.log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+' "$work/$name.log" | tail -1 || true)
    crashes=$(( $(find "$artifacts" -type f | wc -l) - before ))
    echo "== $name: ${execs:-0} executions (${rate:-0}/s), ${cov:-cov: ?}, corpus $(ls "$live" | wc -l) files, $crashes new crashes, exit $rc"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        grep -E "ERROR|SUMMARY|Test unit written" "$work/$name.log" | head -10 || true
    fi
done
exit $status
