#!/usr/bin/env python3
"""Berth's density benchmark (issue 15: many guests on one host), side by side in one run.

  bench/density/run.py [--bin .build/release] [--storms 10,25,50] [--budget 420] [--catalog 10000]
                       [--only storms,limit,autostart,idle,init,small,start,catalog]

1. Boot storm: N 128 MiB test guests started at once by N `berth start` processes against N
   raw QEMUs with the same arguments started at once; time until every guest printed
   BERTH-GUEST-READY, and the worst latency of a GET /v1/domains polled every 100 ms during
   the storm. For N<=25 also: berthd's default start limit and none, four storms each in
   fresh berthds (ABBA order); berthd started with N autostart guests, from its launch to every
   guest's init. Every guest must be running afterwards. N=50 runs only while the whole run
   stays under ~10 minutes.
2. Per-guest footprint, Rss and Pss from /proc/PID/smaps_rollup, Berth vs raw; the TCG
   translation buffer (tb-size) Berth chooses against QEMU's default, same guest, side by side;
   KSM (/sys/kernel/mm/ksm) on the running storm, with the saving it makes.
3. berthd's Rss/Pss with 1,000 defined domains and the storm's guests running; idle guests
   started ten at a time until berthd refuses one for memory (how many this host holds).
4. A 10,000-domain catalog: GET /v1/domains, `berth list --all`, define and undefine latency,
   berthd's start-up time.
5. Time to init, Berth's default machine against raw `-M pc` (bench/foundation.py's measure;
   where the time goes, phase by phase: bench/density/boot.py).
6. `berth list --all`, `domstate`, `dominfo` against `virsh -c test:///…` with 20 domains,
   and `berth start` against `virsh start` on a libvirtd of the bench's own (libvirtd.py),
   whole process (virsh comes from Debian's libvirt-clients, installed by this script's setup
   through scripts/install-host-deps; it is never part of Berth).
Needs a release build (swift build -c release) and the test guest (fixtures/guest/build.sh).
"""
import argparse, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import foundation  # noqa: E402  (the Daemon, raw_argv and time-to-init helpers)
sys.path.insert(0, HERE)
import libvirtd  # noqa: E402  (a libvirtd of the bench's own, for `virsh start`)

REPO = foundation.REPO
MARKER = foundation.MARKER
BEGAN = time.monotonic()


def elapsed():
    return time.monotonic() - BEGAN


def smaps(pid):
    """(Rss, Pss) in MiB from /proc/PID/smaps_rollup."""
    values = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in ("Rss:", "Pss:"):
                values[parts[0][:-1]] = int(parts[1]) / 1024
    return values.get("Rss", float("nan")), values.get("Pss", float("nan"))


def mean_footprint(pids):
    rows = [smaps(pid) for pid in pids]
    return statistics.mean(r[0] for r in rows), statistics.mean(r[1] for r in rows)


def all_ready(logs, start, timeout=900, procs=None):
    """Waits until every log holds the marker; returns the seconds since `start`. With `procs`
    (raw QEMUs, one per log), a QEMU that exits first ends the wait with its status."""
    pending = set(logs)
    while pending:
        if time.monotonic() - start > timeout:
            raise RuntimeError(f"{len(pending)} guests not ready within {timeout}s")
        for log, proc in zip(logs, procs or []):
            if log in pending and proc.poll() is not None:
                raise RuntimeError(f"a raw QEMU exited with status {proc.returncode} before its guest's init ({log})")
        for log in list(pending):
            try:
                with open(log, "rb") as f:
                    if MARKER in f.read():
                        pending.discard(log)
            except FileNotFoundError:
                pass
        time.sleep(0.02)
    return time.monotonic() - start


class Poller(threading.Thread):
    """GET /v1/domains every 100 ms; the worst latency and any request that failed."""

    def __init__(self, daemon):
        super().__init__(daemon=True)
        self.berthd, self.worst, self.count, self.failed = daemon, 0.0, 0, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            began = time.perf_counter()
            try:
                self.berthd.request("GET", "/v1/domains")
                self.count += 1
                self.worst = max(self.worst, time.perf_counter() - began)
            except Exception:
                self.failed += 1
            time.sleep(0.1)

    def stop(self):
        self.stopping.set()
        self.join()


def spec(name, memory=128):
    s = foundation.guest_spec(name)
    s["memory"] = memory
    return s


def check_running(daemon, names):
    """Every guest reached its init, so none may be marked crashed or off by a slow host."""
    states = {n: daemon.request("GET", f"/v1/domains/{n}")["state"] for n in names}
    wrong = {n: s for n, s in states.items() if s != "running"}
    if wrong:
        raise RuntimeError(f"{len(wrong)} guests are not running after the storm: {wrong}")


def start_through_cli(daemon, names):
    """`berth start` of every name at once, one process each: [(name, exit status, stderr)]."""
    procs = [subprocess.Popen([f"{daemon.bin}/berth", "start", n], env=daemon.env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for n in names]
    return [(n, p.returncode, error.decode()) for n, p in zip(names, procs) for _, error in [p.communicate()]]


class Storm:
    """N guests defined in one berthd, started at once through the CLI, destroyed after."""

    def __init__(self, daemon, count, prefix):
        self.daemon, self.names = daemon, [f"{prefix}{i:02d}" for i in range(count)]
        for name in self.names:
            daemon.request("POST", "/v1/domains", spec(name))
        self.logs = [daemon.request("GET", f"/v1/domains/{n}")["consoleLog"] for n in self.names]

    def run(self):
        for log in self.logs:
            if os.path.exists(log):
                os.unlink(log)
        poller = Poller(self.daemon)
        poller.start()
        start = time.monotonic()
        failed = [error for _, status, error in start_through_cli(self.daemon, self.names) if status != 0]
        if failed:
            poller.stop()
            raise RuntimeError(f"{len(failed)} starts failed: {failed[0]}")
        seconds = all_ready(self.logs, start)
        poller.stop()
        check_running(self.daemon, self.names)
        return seconds, poller

    def pids(self):
        return [self.daemon.request("GET", f"/v1/domains/{n}")["pid"] for n in self.names]

    def destroy(self):
        for name in self.names:
            self.daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")


def raw_storm(argv, fds, count):
    """`count` raw QEMUs with berthd's arguments, started at once; (seconds, processes, dirs)."""
    work = [tempfile.mkdtemp(prefix="bq-", dir="/tmp") for _ in range(count)]
    logs = [f"{w}/console.log" for w in work]
    start = time.monotonic()
    procs = [subprocess.Popen(foundation.raw_argv(argv, log, fds), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for log in logs]
    return all_ready(logs, start, procs=procs), procs, work


def end_raw(procs, work):
    for p in procs:
        p.kill()
        p.wait()
    for w in work:
        shutil.rmtree(w, ignore_errors=True)


def berthd_stats(daemon):
    rss, pss = smaps(daemon.proc.pid)
    return f"Rss {rss:6.1f} MiB, Pss {pss:6.1f} MiB"


def ksm_saving(pids):
    """Turns KSM on for the running guests (restoring the host's settings after) and returns
    (MiB saved per KSM's pages_sharing, mean Pss before, mean Pss after)."""
    base = "/sys/kernel/mm/ksm"
    if not os.path.exists(f"{base}/run"):
        return None
    keys = ["run", "pages_to_scan", "sleep_millisecs"]
    saved = {k: open(f"{base}/{k}").read().strip() for k in keys}
    before = mean_footprint(pids)[1]
    try:
        with open(f"{base}/pages_to_scan", "w") as f:
            f.write("4000")
        with open(f"{base}/sleep_millisecs", "w") as f:
            f.write("20")
        with open(f"{base}/run", "w") as f:
            f.write("1")
        # Two full scans merge what is identical (the first fills the unstable tree).
        scans = int(open(f"{base}/full_scans").read())
        deadline = time.monotonic() + 120
        while int(open(f"{base}/full_scans").read()) < scans + 2 and time.monotonic() < deadline:
            time.sleep(1)
        sharing = int(open(f"{base}/pages_sharing").read())
        after = mean_footprint(pids)[1]
    finally:
        for k in ["pages_to_scan", "sleep_millisecs", "run"]:
            with open(f"{base}/{k}", "w") as f:
                f.write(saved[k])
    return sharing * 4096 / 2**20, before, after


def tb_size_side_by_side(argv, fds, runs=3):
    """Berth's tb-size against QEMU's default, same arguments otherwise: time to init and Pss."""
    def variant(accel):
        fixed = list(argv)
        fixed[fixed.index("-accel") + 1] = accel
        return fixed

    chosen = argv[argv.index("-accel") + 1]
    print(f"== TCG translation buffer: '{chosen}' (Berth) vs 'tcg' (QEMU's default 1 GiB), raw QEMU, median of {runs}")
    for accel in [chosen, "tcg"]:
        times, feet = [], []
        for _ in range(runs):
            seconds, procs, work = raw_storm(variant(accel), fds, 1)
            time.sleep(3)  # settled after init
            times.append(seconds)
            feet.append(smaps(procs[0].pid))
            end_raw(procs, work)
        print(f"  -accel {accel:18s} init {statistics.median(times):6.3f} s   Rss {statistics.median(f[0] for f in feet):6.1f} MiB"
              f"   Pss {statistics.median(f[1] for f in feet):6.1f} MiB")


def storms(daemon, counts, budget):
    print("== boot storm: N x 128 MiB guests started at once (berth: N 'berth start' processes; raw: N qemu)")
    argv = fds = None
    results = {}
    for count in counts:
        if count > 25 and elapsed() > budget:
            print(f"  N={count}: skipped, the run has taken {elapsed():.0f} s already (budget {budget} s)")
            continue
        storm = Storm(daemon, count, f"s{count}-")
        seconds, poller = storm.run()
        pids = storm.pids()
        time.sleep(3)
        rss, pss = mean_footprint(pids)
        if argv is None:
            argv = [a.decode() for a in open(f"/proc/{pids[0]}/cmdline", "rb").read().split(b"\0")[:-1]]
            fds = foundation.fd_paths(pids[0])
        line = (f"  N={count:3d} berth {seconds:7.2f} s  (GET /v1/domains: {poller.count} polls, worst {poller.worst * 1000:7.1f} ms,"
                f" {poller.failed} failed)   per guest Rss {rss:6.1f} MiB Pss {pss:6.1f} MiB")
        results[count] = (storm, pids)
        if count == 25:
            print(line)
            print(f"  berthd with 1,000 defined domains and {count} running guests: {berthd_stats(daemon)}")
            ksm = ksm_saving(pids)
            if ksm:
                print(f"  KSM on {count} guests: {ksm[0]:7.1f} MiB shared (pages_sharing), mean guest Pss {ksm[1]:6.1f} -> {ksm[2]:6.1f} MiB")
            else:
                print("  KSM: this kernel has no /sys/kernel/mm/ksm")
            line = None
        storm.destroy()
        raw_seconds, procs, work = raw_storm(argv, fds, count)
        time.sleep(3)
        raw_rss, raw_pss = mean_footprint([p.pid for p in procs])
        end_raw(procs, work)
        if line:
            print(line)
        print(f"  N={count:3d} raw   {raw_seconds:7.2f} s  berth/raw = {seconds / raw_seconds:5.3f}"
              f"{' ' * 38}per guest Rss {raw_rss:6.1f} MiB Pss {raw_pss:6.1f} MiB")
    return argv, fds


def storm_in_fresh_daemon(bin_dir, count, extra):
    """One storm of `count` guests in a berthd of its own: (seconds, the API's worst latency)."""
    daemon = foundation.Daemon(bin_dir, extra=extra)
    try:
        storm = Storm(daemon, count, "u")
        seconds, poller = storm.run()
        storm.destroy()
        return seconds, poller.worst
    finally:
        daemon.stop()


def start_limit_side_by_side(bin_dir, count, rounds=4):
    """Storms with berthd's default start limit and without one, each in a fresh berthd, in the
    order A B B A A B B A (storms on this host drift faster over a run, so plain alternation
    would favour whichever goes second): whether the limit makes a storm slower is decided
    here (keep what is faster)."""
    variants = {"default limit": [], "no limit (--start-limit 1024)": ["--start-limit", "1024"]}
    results = {label: [] for label in variants}
    for r in range(rounds):
        for label in (list(variants) if r % 2 == 0 else list(reversed(variants))):
            results[label].append(storm_in_fresh_daemon(bin_dir, count, variants[label]))
    for label, runs in results.items():
        times = ", ".join(f"{t:.1f}" for t, _ in runs)
        worst = ", ".join(f"{w * 1000:.0f}" for _, w in runs)
        print(f"  N={count:3d} berth, {label:30s} storm {statistics.median(t for t, _ in runs):6.2f} s median ({times})"
              f"   GET /v1/domains worst {worst} ms")


def autostart_storm(bin_dir, count):
    """berthd started with `count` autostart guests (a host back from a power cut): from its
    launch until every guest printed its marker, the API polled from its first answer."""
    daemon = foundation.Daemon(bin_dir)
    try:
        storm = Storm(daemon, count, "a")
        for name in storm.names:
            daemon.request("PUT", f"/v1/domains/{name}/autostart", {"autostart": True})
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait()
        start = time.monotonic()
        answered = daemon.launch()
        poller = Poller(daemon)
        poller.start()
        seconds = all_ready(storm.logs, start)
        poller.stop()
        check_running(daemon, storm.names)
        print(f"  N={count:3d} berthd started with {count} autostart guests: {seconds:7.2f} s to every init"
              f"  (first answer after {answered:5.2f} s; GET /v1/domains worst {poller.worst * 1000:7.1f} ms,"
              f" {poller.failed} failed)")
        storm.destroy()
    finally:
        daemon.stop()


def fill_host(bin_dir, batch=10, ceiling=400, budget=900):
    """Idle 128 MiB guests started through `berth start`, `batch` at a time (each batch booted to
    its init before the next), until berthd refuses one for memory or `budget` seconds have
    passed (on 2 cores under TCG the idle guests' own CPU use slows each batch: 148 guests took
    20 minutes): how many run at once, what the host has left then, and what they use."""
    print(f"== idle 128 MiB guests started {batch} at a time until berthd refuses one for memory")
    daemon = foundation.Daemon(bin_dir)
    running, refusal = [], None
    began = time.monotonic()
    try:
        while refusal is None and len(running) < ceiling and time.monotonic() - began < budget:
            names = [f"f{len(running) + i:03d}" for i in range(batch)]
            for name in names:
                daemon.request("POST", "/v1/domains", spec(name))
            started = []
            for name, status, error in start_through_cli(daemon, names):
                if status == 0:
                    started.append(name)
                elif "Not enough memory" in error:
                    refusal = refusal or "the next was refused: " + error.strip().splitlines()[0]
                else:
                    raise RuntimeError(f"berth start {name} failed for another reason: {error}")
            all_ready([daemon.request("GET", f"/v1/domains/{n}")["consoleLog"] for n in started], time.monotonic())
            running += started
        if refusal is None:
            refusal = f"none refused: the bench stopped at its ceiling ({ceiling} guests) or budget ({budget} s)"
        check_running(daemon, running)
        time.sleep(10)  # settled: idle guests
        pids = [daemon.request("GET", f"/v1/domains/{n}")["pid"] for n in running]
        rss, pss = mean_footprint(pids)
        meminfo = open("/proc/meminfo").read()
        available = int(meminfo.split("MemAvailable:")[1].split()[0]) / 1024
        print(f"  {len(running)} guests running after {time.monotonic() - began:.0f} s; {refusal}")
        print(f"  then: host MemAvailable {available:.0f} MiB; per guest Rss {rss:6.1f} MiB Pss {pss:6.1f} MiB;"
              f" all guests' Pss {pss * len(running) / 1024:5.1f} GiB; berthd {berthd_stats(daemon)}")
    finally:
        daemon.stop()


def catalog_scale(bin_dir, count):
    print(f"== a catalog of {count} domains")
    daemon = foundation.Daemon(bin_dir)
    try:
        began = time.monotonic()
        for i in range(count):
            daemon.request("POST", "/v1/domains", spec(f"c{i:05d}"))
        print(f"  defining {count} domains through the API: {time.monotonic() - began:6.1f} s")
        samples = []
        for _ in range(20):
            t = time.perf_counter()
            daemon.request("GET", "/v1/domains")
            samples.append(time.perf_counter() - t)
        print(f"  GET /v1/domains: median {statistics.median(samples) * 1000:7.1f} ms")
        cli = []
        for _ in range(10):
            t = time.perf_counter()
            daemon.berth("list", "--all")
            cli.append(time.perf_counter() - t)
        print(f"  berth list --all (whole process): median {statistics.median(cli) * 1000:7.1f} ms")
        defines, undefines = [], []
        for i in range(20):
            t = time.perf_counter()
            daemon.request("POST", "/v1/domains", spec(f"extra{i}"))
            defines.append(time.perf_counter() - t)
            t = time.perf_counter()
            daemon.request("DELETE", f"/v1/domains/extra{i}")
            undefines.append(time.perf_counter() - t)
        print(f"  define: median {statistics.median(defines) * 1000:6.1f} ms   undefine: median {statistics.median(undefines) * 1000:6.1f} ms")
        print(f"  berthd with {count} domains: {berthd_stats(daemon)}")
        print(f"  berthd start-up with {count} domains (to its first answer): {daemon.restart():6.2f} s")
    finally:
        daemon.stop()


def virsh_node(path, count):
    """A libvirt test-driver node with `count` shut-off domains (virsh -c test:///PATH)."""
    domains = "".join(
        f"<domain type='test'><name>v{i:02d}</name><memory>131072</memory><vcpu>1</vcpu>"
        f"<os><type>hvm</type></os></domain>" for i in range(count))
    with open(path, "w") as f:
        f.write(f"<node>{domains}</node>")


def small_commands(bin_dir, count=20, runs=30):
    print(f"== small commands with {count} domains, whole process, median of {runs}")
    daemon = foundation.Daemon(bin_dir)
    node = tempfile.mktemp(prefix="virsh-node-", suffix=".xml", dir="/tmp")
    try:
        for i in range(count):
            daemon.request("POST", "/v1/domains", spec(f"d{i:02d}"))
        virsh_node(node, count)
        uri = f"test://{node}"

        def timed(argv, env=None):
            samples = []
            for _ in range(runs):
                t = time.perf_counter()
                subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                samples.append(time.perf_counter() - t)
            return statistics.median(samples) * 1000

        for berth_args, virsh_args in [(["list", "--all"], ["list", "--all"]), (["domstate", "d07"], ["domstate", "v07"]),
                                       (["dominfo", "d07"], ["dominfo", "v07"])]:
            ours = timed([f"{bin_dir}/berth", *berth_args], daemon.env)
            theirs = timed(["virsh", "-c", uri, *virsh_args]) if shutil.which("virsh") else float("nan")
            print(f"  {' '.join(berth_args):14s} berth {ours:6.1f} ms   virsh {theirs:6.1f} ms   berth/virsh = {ours / theirs:5.2f}")
    finally:
        daemon.stop()
        if os.path.exists(node):
            os.unlink(node)


def start_against_libvirt(bin_dir, count=20, runs=10):
    """`berth start` against `virsh start` on a libvirtd of the bench's own (bench/density/
    libvirtd.py), the same 128 MiB direct-kernel guest, whole process until the command returns
    (the guest's QEMU running); each start is followed by an untimed destroy. Runs alternate."""
    print(f"== start with {count} domains, whole process until the command returns, median of {runs}"
          " (libvirtd 9.0 in a namespace of its own, QEMU as root)")
    daemon = foundation.Daemon(bin_dir)
    libvirt = None
    try:
        for i in range(count):
            daemon.request("POST", "/v1/domains", spec(f"d{i:02d}"))
        pc = spec("p07")
        pc["machine"] = "pc"
        daemon.request("POST", "/v1/domains", pc)
        libvirt = libvirtd.Libvirtd(REPO)
        libvirt.define_direct_kernel("v07", pc["kernel"], pc["initrd"], pc["cmdline"], pc["memory"])
        samples = {"d07": [], "p07": [], "v07": []}
        for rnd in range(runs + 1):  # round 0 warms up (the PVH kernel's unpacking, caches)
            for name in samples:
                argv = (["virsh", "-c", libvirt.uri, "start", name] if name == "v07"
                        else [f"{bin_dir}/berth", "start", name])
                t = time.perf_counter()
                subprocess.run(argv, env=daemon.env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if rnd:
                    samples[name].append(time.perf_counter() - t)
                if name == "v07":
                    libvirt.virsh("destroy", name)
                else:
                    daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")
        theirs = statistics.median(samples["v07"]) * 1000
        for name, label in [("d07", "default machine"), ("p07", "-M pc")]:
            ours = statistics.median(samples[name]) * 1000
            print(f"  start ({label:15s}) berth {ours:6.1f} ms   virsh start (-M pc) {theirs:6.1f} ms   berth/virsh = {ours / theirs:5.2f}")
    finally:
        daemon.stop()
        if libvirt:
            libvirt.stop()


SECTIONS = ["storms", "limit", "autostart", "idle", "init", "small", "start", "catalog"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=f"{REPO}/.build/release")
    parser.add_argument("--storms", default="10,25,50")
    parser.add_argument("--budget", type=int, default=420, help="seconds after which N>25 storms are skipped")
    parser.add_argument("--catalog", type=int, default=10000)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"some of {','.join(SECTIONS)}")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"--only: unknown {','.join(sorted(only - set(SECTIONS)))}; the sections are {','.join(SECTIONS)}")
    if not shutil.which("virsh"):
        subprocess.run([f"{REPO}/scripts/install-host-deps", "libvirt-clients"], check=True, stdout=subprocess.DEVNULL)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    print(f"host: {os.cpu_count()} cores, {total:.1f} GiB, load average {os.getloadavg()[0]:.1f}, kernel {os.uname().release}")
    counts = [int(n) for n in args.storms.split(",")]
    small = [n for n in counts if n <= 25]

    if "storms" in only:
        daemon = foundation.Daemon(args.bin)
        try:
            print(f"  berthd idle: {berthd_stats(daemon)}")
            for i in range(1000):
                daemon.request("POST", "/v1/domains", spec(f"many-{i:04d}"))
            print(f"  berthd with 1,000 defined domains: {berthd_stats(daemon)}")
            argv, fds = storms(daemon, counts, args.budget)
            # While berthd runs: the arguments name files in its state directory (the PVH kernel).
            tb_size_side_by_side(argv, fds)
        finally:
            daemon.stop()
    if "limit" in only:
        print("== the start limit: storms in fresh berthds, default limit and none alternating (seconds to every init)")
        for count in small:
            start_limit_side_by_side(args.bin, count)
    if "autostart" in only:
        for count in small:
            autostart_storm(args.bin, count)
    if "idle" in only:
        fill_host(args.bin)
    if "init" in only:
        daemon = foundation.Daemon(args.bin)
        try:
            foundation.bench_start(daemon, 3)
        finally:
            daemon.stop()
    if "small" in only:
        small_commands(args.bin)
    if "start" in only:
        start_against_libvirt(args.bin)
    if "catalog" in only:
        catalog_scale(args.bin, args.catalog)
    print(f"== whole run: {elapsed():.0f} s")


if __name__ == "__main__":
    main()
