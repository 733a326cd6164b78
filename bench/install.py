#!/usr/bin/env python3
"""`berth install` against the same install done by hand with plain QEMU, side by side in one run.

  bench/install.py [--bin .build/release] [--runs 3]

Berth: the seed's virt-install line (`berth install ... --location=http://127.0.0.1:PORT/install/
TREE/ -x ks=...`) against berthd's media server, timed in two phases:
  phase 1: from the command's start until the installer's QEMU has exited (the domain shuts off);
  phase 2: from then until the installed guest, booted from its own disk through Berth's
           bootloader, prints BERTH-GUEST-READY.
Raw: the same two steps with qemu-system-x86_64 and the very arguments berthd used (read from
/proc/PID/cmdline), minus -daemonize, -pidfile and QMP, the console written to a file:
  run 1: qemu-img create + the installer kernel/initrd on a fresh disk until QEMU exits (the
         tree and kickstart come from the same berthd media server);
  run 2: berth-bootloader extracts the kernel/initrd the installer wrote, then a direct kernel
         boot until BERTH-GUEST-READY.
Both sides use the same tree, kernel, initrd, memory and vCPUs; runs alternate Berth/raw.
Needs the install fixture (fixtures/install/build-tree.sh; env BERTH_FIXTURES or fixtures/out)
and a release build (swift build -c release).
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

sys.dont_write_bytecode = True  # importing foundation.py must leave no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from foundation import Daemon, disk_format, fd_paths, raw_argv, wait_for  # noqa: E402  (same daemon harness as the foundation bench)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READY = b"BERTH-GUEST-READY"
TIMEOUT = 600


def until(predicate, timeout=TIMEOUT, interval=0.005, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def alive(pid):
    # A zombie counts as gone: berthd reaps its QEMU children asynchronously.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def domain(daemon, name):
    try:
        return daemon.request("GET", f"/v1/domains/{name}")
    except RuntimeError:
        return None  # not defined yet


def running_pid(daemon, name, not_pid=None):
    info = domain(daemon, name)
    if info and info.get("state") == "running" and info.get("pid") and info["pid"] != not_pid:
        return info["pid"]
    return None


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def option(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def berth_install(daemon, tree, run, work):
    """One `berth install`; returns (phase1 s, phase2 s, installer argv, guest argv, disk, files)."""
    name = f"bench-install-{run}"
    disk = f"{work}/d{run}.img"
    base = f"http://127.0.0.1:{daemon.media_port}"
    command = [f"{daemon.bin}/berth", "install", f"--name={name}", "--arch=x86_64", "--vcpus=1", "--ram=256",
               "--disk", f"path={disk},size=1", "--os-variant=rhel6", f"--location={base}/install/{tree}/",
               "-x", f"ks={base}/kickstarts/a.ks", "--nographics", "--noautoconsole"]
    start, berthd_cpu = time.monotonic(), cpu_seconds(daemon.proc.pid)
    proc = subprocess.Popen(command, env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    def started():
        if proc.poll() is not None:
            raise RuntimeError(f"berth install exited {proc.returncode}:\n{proc.stderr.read().decode()}")
        return running_pid(daemon, name)
    pid = until(started, interval=0.01, what="the installer to start")
    prepared = time.monotonic() - start  # fetch, disk, kickstart: everything before QEMU runs
    installer = cmdline(pid)
    installer_fds = fd_paths(pid)
    # The installer's kernel and initrd as berthd started them (QEMU holds them as
    # descriptors), kept for the raw run.
    files = {}
    for opt in ("-kernel", "-initrd"):
        files[opt] = f"{work}/installer{opt}-{run}"
        shutil.copyfile(f"/proc/{pid}/fd/{option(installer, opt).rsplit('/', 1)[1]}", files[opt])
    until(lambda: not alive(pid), what="the installer to power off")
    phase1 = time.monotonic() - start
    berthd_cpu = cpu_seconds(daemon.proc.pid) - berthd_cpu
    log = domain(daemon, name)["consoleLog"]
    wait_for(log, READY, timeout=TIMEOUT, start=start)
    phase2 = time.monotonic() - start - phase1
    out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"berth install exited {proc.returncode}:\n{err.decode()}")
    if b"BERTH-INSTALLER-DONE" not in open(log, "rb").read():
        raise RuntimeError(f"the installer did not finish; see {log}")
    guest_pid = running_pid(daemon, name, not_pid=pid)
    guest = (cmdline(guest_pid), fd_paths(guest_pid))
    daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")
    return phase1, phase2, (installer, installer_fds), guest, disk, files, (prepared, berthd_cpu)


def raw_install(daemon, bin_dir, installer, guest, berth_disk, files, work, run):
    """The same install with qemu-img, two foreground QEMU runs and berth-bootloader."""
    disk = f"{work}/raw{run}.img"
    fmt = disk_format(installer[0])
    log1, log2 = f"{work}/raw{run}-installer.log", f"{work}/raw{run}-guest.log"

    start, berthd_cpu = time.monotonic(), cpu_seconds(daemon.proc.pid)
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, disk, "1G"], check=True)
    argv = raw_argv(installer[0], log1, installer[1], berth_disk, disk, kernel=files["-kernel"], initrd=files["-initrd"])
    prepared = time.monotonic() - start
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=True)
    phase1 = time.monotonic() - start
    berthd_cpu = cpu_seconds(daemon.proc.pid) - berthd_cpu
    if b"BERTH-INSTALLER-DONE" not in open(log1, "rb").read():
        raise RuntimeError(f"raw installer did not finish; see {log1}")

    start = time.monotonic()
    out = f"{work}/boot{run}"
    os.makedirs(out, exist_ok=True)
    chosen = subprocess.run([f"{bin_dir}/berth-bootloader", f"--output-directory={out}", "--output-format=simple", disk],
                            check=True, capture_output=True, text=True).stdout
    boot = dict(line.split(" ", 1) for line in chosen.splitlines() if " " in line)
    append = boot.get("args", "")
    if "console=" not in append:
        append = (append + " console=ttyS0").strip()
    argv = raw_argv(guest[0], log2, guest[1], berth_disk, disk, kernel=boot["kernel"], initrd=boot.get("ramdisk"),
                    append=append)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(log2, READY, timeout=TIMEOUT, start=start)
        phase2 = time.monotonic() - start
    finally:
        proc.kill()
        proc.wait()
    return phase1, phase2, (prepared, berthd_cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default=f"{REPO}/.build/release")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    bin_dir = os.path.abspath(args.bin)
    fixtures = os.environ.get("BERTH_FIXTURES", f"{REPO}/fixtures/out")
    tree, ks = f"{fixtures}/install/tree", f"{fixtures}/install/ks/a.ks"
    if not (os.path.exists(f"{tree}/.treeinfo") and os.path.exists(ks)):
        sys.exit(f"error: no install fixture in {fixtures}/install.\n  Run fixtures/install/build-tree.sh "
                 f"(or set BERTH_FIXTURES to a directory that has install/tree and install/ks).")
    if not os.access(f"{bin_dir}/berth", os.X_OK):
        if args.bin != f"{REPO}/.build/release":
            sys.exit(f"error: no berth in {bin_dir}.\n  Build it with 'swift build -c release' or fix --bin.")
        print("building release binaries (swift build -c release)...", file=sys.stderr)
        subprocess.run(["swift", "build", "-c", "release"], cwd=REPO, check=True)

    daemon = Daemon(bin_dir)
    work = tempfile.mkdtemp(prefix="bi-", dir="/tmp")
    try:
        os.makedirs(f"{daemon.dir}/kickstarts", exist_ok=True)
        shutil.copyfile(ks, f"{daemon.dir}/kickstarts/a.ks")
        daemon.berth("media", "add", "benchtree", tree)
        berth, raw = [], []
        for run in range(args.runs):
            b1, b2, installer, guest, disk, files, (bp, bc) = berth_install(daemon, "benchtree", run, work)
            r1, r2, (rp, rc) = raw_install(daemon, bin_dir, installer, guest, disk, files, work, run)
            berth.append((b1, b2))
            raw.append((r1, r2))
            print(f"  run {run + 1}: berth {b1:6.2f} + {b2:6.2f} s   raw {r1:6.2f} + {r2:6.2f} s"
                  f"   (before the installer's QEMU: berth {bp:5.2f} s, raw {rp:5.2f} s;"
                  f" berthd CPU in phase 1: berth {bc:5.2f} s, raw {rc:5.2f} s)", flush=True)
            if run == 0:
                print(f"    installer: {' '.join(installer[0])}\n    guest:     {' '.join(guest[0])}", flush=True)
    finally:
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"== berth install vs raw qemu, same tree/kernel/initrd, 1 vCPU, 256 MiB (median of {args.runs})")
    print(f"  {'phase':42s} {'berth s':>8s} {'raw s':>8s} {'berth/raw':>10s}")
    rows = [("1 install: command start -> installer off", 0), ("2 first boot: -> BERTH-GUEST-READY", 1)]
    for label, i in rows:
        b, r = statistics.median(x[i] for x in berth), statistics.median(x[i] for x in raw)
        print(f"  {label:42s} {b:8.2f} {r:8.2f} {b / r:10.3f}")
    bt, rt = statistics.median(sum(x) for x in berth), statistics.median(sum(x) for x in raw)
    verdict = "within" if bt <= rt * 1.10 else "OVER"
    print(f"  {'total':42s} {bt:8.2f} {rt:8.2f} {bt / rt:10.3f}   ({verdict} the 10 % target; "
          f"overhead {(bt / rt - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
