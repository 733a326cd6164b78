#!/usr/bin/env python3
"""Berth's foundation benchmark (issue: speed and memory), measured side by side in one run.

  bench/foundation.py [--bin .build/release] [--runs 5] [--domains 1000] [--only start]

1. Start to guest init: `berth start` to the guest's BERTH-GUEST-READY line, against a raw
   qemu-system-x86_64 with the very arguments berthd used, against raw QEMU with -M pc, and
   (when libvirt is installed) `virsh start` of the same guest.
2. GET /v1/domains and `berth list --all` with N defined domains: median latency, requests/s.
3. berthd's resident memory idle and with N domains.
Needs the test guest (fixtures/guest/build.sh) and a release build (swift build -c release).
"""
import argparse, http.client, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = b"BERTH-GUEST-READY"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("berthd")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def wait_for(path, needle, timeout=120, start=None):
    start = start or time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    return time.monotonic() - start
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{needle!r} not seen in {path} within {timeout}s")


def rss_mib(pid, field="VmRSS"):
    """Resident memory; RssAnon is the private part (heap, stacks), without shared library code."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Daemon:
    def __init__(self, bin_dir, extra=()):
        self.dir = tempfile.mkdtemp(prefix="bb-", dir="/tmp")
        self.bin = bin_dir
        self.extra = list(extra)
        self.port = 20000 + (os.getpid() + len(os.listdir("/tmp"))) % 20000
        self.media_port = self.port + 1  # install media have a listener of their own
        self.env = dict(os.environ, BERTH_STATE_DIR=self.dir)
        self.socket = f"{self.dir}/run/berthd.sock"
        self.launch()
        self.token = open(f"{self.dir}/api-token").read().strip()

    def launch(self):
        """Starts berthd; returns the seconds until it answers GET /v1/host."""
        start = time.monotonic()
        self.proc = subprocess.Popen(
            [f"{self.bin}/berthd", "--state-dir", self.dir, "--listen", f"127.0.0.1:{self.port}",
             "--media-listen", f"127.0.0.1:{self.media_port}", "--log-level", "error", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(6000):
            try:
                self.request("GET", "/v1/host")
                return time.monotonic() - start
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("berthd did not answer")

    def restart(self):
        """Stops berthd (guests keep running) and starts it again: its start-up time."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        return self.launch()

    def request(self, method, path, body=None):
        conn = UnixHTTPConnection(self.socket)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def berth(self, *args):
        return subprocess.run([f"{self.bin}/berth", *args], env=self.env, check=True, capture_output=True)

    def stop(self):
        for d in self.request("GET", "/v1/domains"):
            if d["state"] != "shut off":
                self.request("POST", f"/v1/domains/{d['name']}/destroy?wait=true")
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def fd_paths(pid):
    """What a running QEMU's inherited descriptors are: {number: host path}."""
    paths = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return paths


def disk_format(argv):
    """The format driver of the first disk in berthd's -blockdev arguments."""
    for i, a in enumerate(argv[:-1]):
        if a == "-blockdev" and '"node-name":"disk0"' in argv[i + 1]:
            return json.loads(argv[i + 1])["driver"]
    return "raw"


def raw_argv(argv, log, fds, disk_from=None, disk_to=None, kernel=None, initrd=None, append=None):
    """berthd's QEMU arguments for a plain foreground run: same machine, CPU, memory, devices,
    with the files berthd passed as descriptors (`fds`, from fd_paths) named by path again."""
    def path_of(reference):
        number = int(reference.rsplit("/", 1)[1])
        path = fds.get(number, "")
        # QEMU moves an -add-fd descriptor into its fd set (dup, then close): the number then
        # names something else (an eventfd). The one disk of these runs is disk_to.
        if disk_from and (path == disk_from or not path.startswith("/")):
            return disk_to
        return path

    fixed, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in ("-add-fd", "-mon"):
            skip = True
            continue
        if a == "-chardev":
            skip = True
            if nxt.startswith("socket,id=console0"):
                fixed += ["-chardev", f"file,id=console0,path={log}"]
            continue
        if a == "-blockdev" and "/dev/fdset/" in nxt:
            node = json.loads(nxt)
            node["filename"] = path_of(node["filename"])
            fixed += [a, json.dumps(node)]
            skip = True
            continue
        for opt, value in (("-kernel", kernel), ("-initrd", initrd), ("-append", append)):
            if a == opt:
                fixed += [a, value if value is not None else (path_of(nxt) if nxt.startswith("/proc/self/fd/") else nxt)]
                skip = True
                break
        else:
            fixed.append(a)
    return fixed


def guest_spec(name, machine=None):
    guest = os.environ.get("BERTH_FIXTURES", f"{REPO}/fixtures/out") + "/guest"
    spec = {"name": name, "memory": 256, "kernel": f"{guest}/vmlinuz", "initrd": f"{guest}/initrd.img",
            "cmdline": "console=ttyS0 berth.mode=stay"}
    if machine:
        spec["machine"] = machine
    return spec


def cpu_seconds(pid):
    """A process's CPU time so far, every thread (user + system): for TCG, the guest's work,
    the figure a loaded host disturbs least."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_start(argv, fds):
    """Seconds from exec to the marker for raw QEMU with berthd's arguments (own paths), and
    QEMU's CPU seconds then."""
    work = tempfile.mkdtemp(prefix="bq-", dir="/tmp")
    log = f"{work}/console.log"
    fixed = raw_argv(argv, log, fds)
    start = time.monotonic()
    proc = subprocess.Popen(fixed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return wait_for(log, MARKER, start=start), cpu_seconds(proc.pid)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def bench_start(daemon, runs):
    """`berth start` to the guest's init against raw QEMU with the very arguments berthd used,
    runs alternating (Berth default, raw default, Berth -M pc, raw -M pc, and again) so that
    host load drifts affect all alike. Also QEMU's CPU time at the marker ("cpu"): under TCG the
    guest's boot is CPU-bound, and CPU time is what a loaded host's wall clock hides least."""
    print("== start to guest init (median of %d, Berth and raw runs alternating; load %.1f)" % (runs, os.getloadavg()[0]))
    machines = [("berth (default machine)", None), ("berth -M pc", "pc")]
    samples = {label: {"berth": [], "raw": [], "cpu": [], "raw cpu": []} for label, _ in machines}
    for label, machine in machines:
        daemon.request("POST", "/v1/domains", guest_spec("bench-" + (machine or "default"), machine))
    for _ in range(runs):
        for label, machine in machines:
            name, got = "bench-" + (machine or "default"), samples[label]
            info = daemon.request("GET", f"/v1/domains/{name}")
            log = info["consoleLog"]
            if os.path.exists(log):
                os.unlink(log)
            start = time.monotonic()
            daemon.berth("start", name)
            got["berth"].append(wait_for(log, MARKER, start=start))
            info = daemon.request("GET", f"/v1/domains/{name}")
            got["cpu"].append(cpu_seconds(info["pid"]))
            argv = [a.decode() for a in open(f"/proc/{info['pid']}/cmdline", "rb").read().split(b"\0")[:-1]]
            fds = fd_paths(info["pid"])
            daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")
            seconds, used = raw_start(argv, fds)
            got["raw"].append(seconds)
            got["raw cpu"].append(used)
    results = {}
    for label, _ in machines:
        got = samples[label]
        results[label], results["raw " + label] = statistics.median(got["berth"]), statistics.median(got["raw"])
        results["cpu " + label], results["cpu raw " + label] = statistics.median(got["cpu"]), statistics.median(got["raw cpu"])
        print(f"  {label:32s} {results[label]:6.3f} s   raw qemu, same arguments {results['raw ' + label]:6.3f} s"
              f"   berth/raw = {results[label] / results['raw ' + label]:5.3f}")
        print(f"  {'  QEMU CPU time':32s} {results['cpu ' + label]:6.3f} s   raw qemu, same arguments "
              f"{results['cpu raw ' + label]:6.3f} s   berth/raw = {results['cpu ' + label] / results['cpu raw ' + label]:5.3f}")
    pc = results.get("raw berth -M pc")
    if pc:
        print(f"  berth default machine vs raw -M pc: {results['berth (default machine)'] / pc:5.3f} (below 1 is faster); "
              f"QEMU CPU time: {results['cpu berth (default machine)'] / results['cpu raw berth -M pc']:5.3f}")


def bench_list(daemon, count):
    print(f"== listing {count} defined domains")
    existing = len(daemon.request("GET", "/v1/domains"))
    for i in range(existing, count):
        spec = guest_spec(f"many-{i:04d}")
        daemon.request("POST", "/v1/domains", spec)
    samples = []
    for _ in range(200):
        start = time.perf_counter()
        listed = daemon.request("GET", "/v1/domains")
        samples.append(time.perf_counter() - start)
    assert len(listed) >= count
    print(f"  GET /v1/domains (unix socket): median {statistics.median(samples) * 1000:6.2f} ms (target < 10 ms)")

    # Requests per second over TCP loopback with the token, 4 client threads for 3 s.
    stop = time.monotonic() + 3
    done = [0]
    lock = threading.Lock()

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", daemon.port)
        while time.monotonic() < stop:
            conn.request("GET", "/v1/domains", headers={"Authorization": f"Bearer {daemon.token}"})
            conn.getresponse().read()
            with lock:
                done[0] += 1
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"  GET /v1/domains over TCP, keep-alive, 4 clients: {done[0] / 3:8.0f} requests/s")

    cli = []
    for _ in range(20):
        start = time.perf_counter()
        daemon.berth("list", "--all")
        cli.append(time.perf_counter() - start)
    print(f"  berth list --all (whole process): median {statistics.median(cli) * 1000:6.2f} ms "
          f"(virsh list --all took 20.6 ms with 100 domains on this project's machine)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=f"{REPO}/.build/release")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--only", choices=["start"], help="run only section 1, start to guest init")
    args = parser.parse_args()
    daemon = Daemon(args.bin)
    try:
        if args.only == "start":
            bench_start(daemon, args.runs)
            return
        time.sleep(1)
        idle = rss_mib(daemon.proc.pid)
        idle_anon = rss_mib(daemon.proc.pid, "RssAnon")
        bench_start(daemon, args.runs)
        bench_list(daemon, args.domains)
        loaded = rss_mib(daemon.proc.pid)
        loaded_anon = rss_mib(daemon.proc.pid, "RssAnon")
        print("== berthd resident memory (VmRSS; in brackets RssAnon, the private part)")
        print(f"  idle: {idle:6.1f} MiB ({idle_anon:4.1f})   with {args.domains} domains: {loaded:6.1f} MiB "
              f"({loaded_anon:4.1f})   (target < 40 MiB; libvirtd used 31-34 MB)")
    finally:
        daemon.stop()


if __name__ == "__main__":
    main()
