# Sourced by the shell benches: checks the build and the test guest, then makes a network
# namespace of the bench's own ($ns, loopback up) and a state directory ($state), both removed
# at exit (BERTH_BENCH_KEEP=1 keeps the state directory). Sets $bin and $guest.
bin=.build/debug
guest=fixtures/out/guest
[[ -x $bin/berthd && -f $guest/vmlinuz ]] || { echo "run swift build and fixtures/guest/build.sh first" >&2; exit 1; }
ns=berth-bench-$$
state=/tmp/berth-bench-$$
mkdir -p "$state"
cleanup() {
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
    ip netns del "$ns" 2>/dev/null || true
    [[ -n ${BERTH_BENCH_KEEP:-} ]] || rm -rf "$state"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
