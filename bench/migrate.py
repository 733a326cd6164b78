#!/usr/bin/env python3
"""Moving guests, measured side by side in one run (issue 12's speed section).

  bench/migrate.py [--bin .build/release] [--sizes 256,1024]

For each memory size (MiB), the same guest (the test guest, idle at its shell after touching
half its memory):
1. `berth save` and `berth restore` (whole CLI, wall clock), against raw QEMU with the same
   arguments berthd used doing its own `migrate "exec:cat > FILE"` (paused first, as berth
   save does) and `-incoming "exec:cat FILE"` until `query-migrate` says completed.
2. Restore-to-running latency: from `berth restore` to the guest's next console line.
3. Live migration (`berth migrate --live`) between two berthd in a network namespace of the
   bench's own: total time and downtime as QEMU reports them, and the CLI's wall clock.
Needs root (ip netns), the test guest (fixtures/guest/build.sh) and a release build.
"""
import argparse, json, os, re, shutil, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foundation import Daemon, fd_paths, raw_argv, wait_for  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUEST = os.environ.get("BERTH_FIXTURES", f"{REPO}/fixtures/out") + "/guest"


def spec(name, memory):
    # Half the memory dirtied with non-zero bytes (zero pages cost QEMU nothing to send), then a
    # tick every 100 ms so the restored guest's first line shows it runs.
    fill = max(memory // 2, 16)
    run = (f"dd if=/dev/urandom of=/fill bs=1M count={fill} 2>/dev/null; echo FILLED; "
           "i=0; while :; do echo tick $i; i=$((i+1)); usleep 100000; done")
    return {"name": name, "memory": memory, "kernel": f"{GUEST}/vmlinuz", "initrd": f"{GUEST}/initrd.img",
            "cmdline": f'console=ttyS0 berth.run="{run}"'}


class NamespacedDaemon(Daemon):
    """A berthd inside network namespace `ns` (its TCP listener on that namespace's loopback)."""

    def __init__(self, bin_dir, ns, port):
        self.dir = tempfile.mkdtemp(prefix="bm-", dir="/tmp")
        self.bin = bin_dir
        self.port = port
        self.env = dict(os.environ, BERTH_STATE_DIR=self.dir)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, f"{bin_dir}/berthd", "--state-dir", self.dir, "--listen", f"127.0.0.1:{port}",
             "--media-listen", f"127.0.0.1:{port + 1}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.socket = f"{self.dir}/run/berthd.sock"
        for _ in range(400):
            try:
                self.request("GET", "/v1/host")
                break
            except OSError:
                time.sleep(0.05)
        self.token = open(f"{self.dir}/api-token").read().strip()


def qmp(path, *commands):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(200):
        try:
            s.connect(path)
            break
        except OSError:
            time.sleep(0.05)
    f = s.makefile("rwb")
    f.readline()
    answers = []
    for command in [{"execute": "qmp_capabilities"}] + list(commands):
        f.write(json.dumps(command).encode() + b"\n")
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if "return" in reply or "error" in reply:
                answers.append(reply)
                break
    s.close()
    return answers[1:]


def wait_migrated(path, timeout=600):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        status = qmp(path, {"execute": "query-migrate"})[0].get("return", {}).get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise RuntimeError(f"raw migration {status}")
        time.sleep(0.02)
    raise RuntimeError("raw migration did not complete")


def bench_size(daemon, memory, work):
    name = f"mv{memory}"
    daemon.request("POST", "/v1/domains", spec(name, memory))
    info = daemon.request("GET", f"/v1/domains/{name}")
    log = info["consoleLog"]
    start = time.monotonic()
    daemon.berth("start", name)
    wait_for(log, b"tick 3", timeout=600, start=start)
    info = daemon.request("GET", f"/v1/domains/{name}")
    argv = [a.decode() for a in open(f"/proc/{info['pid']}/cmdline", "rb").read().split(b"\0")[:-1]]
    fds = fd_paths(info["pid"])

    file = f"{work}/{name}.save"
    t = time.monotonic()
    daemon.berth("save", name, file)
    berth_save = time.monotonic() - t
    size = os.path.getsize(file)
    before = len(open(log, "rb").read())
    t = time.monotonic()
    daemon.berth("restore", file)
    berth_restore = time.monotonic() - t
    # Restore to running: the first console line the restored guest prints.
    deadline = time.monotonic() + 120
    while len(open(log, "rb").read()) == before and time.monotonic() < deadline:
        time.sleep(0.002)
    to_running = time.monotonic() - t
    daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")

    # Raw QEMU, same arguments (files by path again), its own migrate to a file.
    raw_log = f"{work}/{name}-raw.log"
    monitor = f"{work}/{name}-raw.qmp"
    fixed = raw_argv(argv, raw_log, fds) + ["-qmp", f"unix:{monitor},server=on,wait=off"]
    fixed = [a for a in fixed if not a.startswith("on,obsolete=deny")]
    fixed = [a for i, a in enumerate(fixed) if not (a == "-sandbox")]
    proc = subprocess.Popen(fixed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(raw_log, b"tick 3", timeout=600)
    raw_file = f"{work}/{name}-raw.save"
    t = time.monotonic()
    qmp(monitor, {"execute": "stop"}, {"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 1 << 40}},
        {"execute": "migrate", "arguments": {"uri": f"exec:cat > {raw_file}"}})
    wait_migrated(monitor)
    raw_save = time.monotonic() - t
    # berth save syncs its file before naming it; the same with the data on disk for raw QEMU.
    synced_file = f"{work}/{name}-raw-synced.save"
    qmp(monitor, {"execute": "cont"})
    time.sleep(1)
    t = time.monotonic()
    qmp(monitor, {"execute": "stop"},
        {"execute": "migrate", "arguments": {"uri": f"exec:dd of={synced_file} bs=1M conv=fsync status=none"}})
    wait_migrated(monitor)
    raw_synced = time.monotonic() - t
    os.unlink(synced_file)
    proc.kill()
    proc.wait()
    os.unlink(monitor)
    t = time.monotonic()
    proc = subprocess.Popen(fixed + ["-S", "-incoming", f"exec:cat {raw_file}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_migrated(monitor)
    qmp(monitor, {"execute": "cont"})
    raw_restore = time.monotonic() - t
    proc.kill()
    proc.wait()
    print(f"  {memory:5d} MiB  save  berth {berth_save:6.2f} s  raw {raw_save:6.2f} s  berth/raw {berth_save / raw_save:5.2f}"
          f"   raw+fsync {raw_synced:6.2f} s  berth/(raw+fsync) {berth_save / raw_synced:5.2f}   (file {size / 1048576:.0f} MiB)")
    print(f"  {memory:5d} MiB  restore berth {berth_restore:6.2f} s  raw {raw_restore:6.2f} s  berth/raw "
          f"{berth_restore / raw_restore:5.2f}   restore to first guest line {to_running:6.2f} s")
    return name


def bench_live(bin_dir, sizes):
    ns = f"berth-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    port = 21000 + os.getpid() % 5000
    source = NamespacedDaemon(bin_dir, ns, port)
    destination = NamespacedDaemon(bin_dir, ns, port + 10)
    try:
        for memory in sizes:
            name = f"live{memory}"
            source.request("POST", "/v1/domains", spec(name, memory))
            log = source.request("GET", f"/v1/domains/{name}")["consoleLog"]
            source.berth("start", name)
            wait_for(log, b"tick 3", timeout=600)
            t = time.monotonic()
            out = subprocess.run(
                [f"{bin_dir}/berth", "migrate", name, "--to", f"http://127.0.0.1:{destination.port}", "--live"],
                env=dict(source.env, BERTH_TO_TOKEN=destination.token), capture_output=True, text=True, check=True).stdout
            wall = time.monotonic() - t
            figures = re.search(r"memory moved: (\d+) MiB, total time (\d+) ms, downtime (\d+) ms", out)
            moved, total, down = (int(x) for x in figures.groups())
            print(f"  {memory:5d} MiB  live migration: total {total} ms, downtime {down} ms (QEMU's figures), "
                  f"{moved} MiB sent; berth migrate wall clock {wall:5.2f} s")
            destination.request("POST", f"/v1/domains/{name}/destroy?wait=true")
    finally:
        source.stop()
        destination.stop()
        subprocess.run(["ip", "netns", "delete", ns])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=f"{REPO}/.build/release")
    parser.add_argument("--sizes", default="256,1024")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    daemon = Daemon(args.bin)
    work = tempfile.mkdtemp(prefix="bm-work-", dir="/var/tmp")
    try:
        print("== save / restore: berth vs raw QEMU migrate to a file (one run each, same guest)")
        for memory in sizes:
            bench_size(daemon, memory, work)
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("== live migration between two berthd (one network namespace, 127.0.0.1)")
    bench_live(args.bin, sizes)


if __name__ == "__main__":
    main()
