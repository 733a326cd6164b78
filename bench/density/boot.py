#!/usr/bin/env python3
"""Where a direct-kernel guest's time to init goes (issue 15), measured with boot-time markers.

  bench/density/boot.py [--bin .build/debug] [--rounds 5] [--variants raw-pc,berth-default,...] [--copy]

Each QEMU runs in the foreground with three extra channels the bench reads with timestamps
(one select loop; no log file is polled):
  * QMP on a passed listening socket: its greeting ("qmp") is the end of QEMU's own start-up
    (machine built, vCPU about to run);
  * an `isa-debugcon` at port 0x402 on a pipe: SeaBIOS prints its log there ("Booting from
    ROM" = "rom", the hand-over to linuxboot's option ROM, which loads kernel and initrd over
    fw_cfg); qboot prints nothing. The guest's init writes two markers there through a tiny
    static helper (`debugport`, built here with cc; the test kernel has no /dev/port):
    BERTH-INIT-START as init's first act ("init") and BERTH-INIT-READY just before its
    BERTH-GUEST-READY line ("ready");
  * the serial console on a pipe: its first byte ("serial") is the kernel's real-mode setup
    code ("Probing EDD…", printed as soon as the firmware jumps to the kernel), and "Linux
    version" ("console") arrives when start_kernel registers the console, after decompression.
    Behind SeaBIOS the setup code printed nothing on the serial port here, so for `pc` "load"
    holds decompression too and "decomp" is about 0.
The guest's own clock is not used: under load its uptime disagreed with the host by seconds.
The guest is the test guest with a small cpio appended to its initramfs (the modified /init and
the helper); the fixture itself is not changed and the kernel command line is Berth's own.

Phases, medians in seconds: qemu = exec→qmp, firmware = qmp→rom (SeaBIOS only), load =
rom→serial, fw+load = qmp→serial (every firmware), decomp = serial→console (decompression and
early start_kernel), kernel = console→init, initrc = init→ready; "to init" and "to ready" from
QEMU's exec; "cpu init" and "cpu ready" are QEMU's CPU time (all threads) at those markers,
the steadier figure on a loaded host (TCG is CPU-bound); "unq init" and "unq ready" are the
times to the markers less what the vCPU thread spent queued for a host CPU (schedstat), i.e.
what a quiet host would take: the vCPU's own run time plus the time the guest idled. Every variant runs once per round,
in a new random order each round; ratios are against raw-pc's medians.

The Berth command lines are taken from a real berthd (--bin): the default machine and -M pc,
each started once, then run raw (foundation.raw_argv). Candidates are edits of those.
"""
import argparse, ctypes, os, random, re, select, shutil, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import foundation  # noqa: E402

REPO = foundation.REPO
GUEST = os.environ.get("BERTH_FIXTURES", f"{REPO}/fixtures/out") + "/guest"
QBOOT = "/usr/share/qemu/qboot.rom"

DEBUGPORT_C = r"""
static long sys3(long n, long a, long b, long c) {
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
static void outb(unsigned char v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"((unsigned short)0x402)); }
static int run(int argc, char **argv) {
	if (sys3(173 /* ioperm */, 0x402, 1, 1) != 0) return 1;
	for (int i = 1; i < argc; i++) {
		for (const char *p = argv[i]; *p; p++) outb((unsigned char)*p);
		outb(i + 1 < argc ? ' ' : '\n');
	}
	return 0;
}
__attribute__((used)) void start_c(long *sp) { sys3(60 /* exit */, run((int)sp[0], (char **)(sp + 1)), 0, 0); }
__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call start_c\n");
"""


def marked_initrd(work):
    """The test guest's initramfs plus an appended cpio: /init with the two markers, /bin/debugport."""
    tree = f"{work}/overlay"
    os.makedirs(f"{tree}/bin")
    with open(f"{work}/debugport.c", "w") as f:
        f.write(DEBUGPORT_C)
    subprocess.run(["cc", "-static", "-nostdlib", "-Os", "-s", "-fno-stack-protector",
                    "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none", "-o", f"{tree}/bin/debugport",
                    f"{work}/debugport.c"], check=True)
    init = open(f"{REPO}/fixtures/guest/rootfs/init").read()
    console = "exec </dev/console >/dev/console 2>&1\n"
    ready = 'echo "BERTH-GUEST-READY uptime=$up"\n'
    assert console in init and ready in init, "fixtures/guest/rootfs/init changed: update the markers"
    init = init.replace(console, console + "read -r up _ </proc/uptime; /bin/debugport BERTH-INIT-START uptime=$up\n", 1)
    init = init.replace(ready, "/bin/debugport BERTH-INIT-READY uptime=$up\n" + ready, 1)
    with open(f"{tree}/init", "w") as f:
        f.write(init)
    os.chmod(f"{tree}/init", 0o755)
    files = subprocess.run("find . | LC_ALL=C sort", shell=True, cwd=tree, check=True, capture_output=True).stdout
    archive = subprocess.run(["cpio", "-o", "-H", "newc", "-R", "0:0", "--reproducible", "--quiet"], cwd=tree,
                             input=files, check=True, capture_output=True).stdout
    path = f"{work}/initrd.img"
    with open(path, "wb") as out, open(f"{GUEST}/initrd.img", "rb") as original:
        shutil.copyfileobj(original, out)
        out.write(archive)
    return path


def berth_argvs(bin_dir, initrd):
    """Berth's QEMU arguments for the test guest, default machine and -M pc, run raw."""
    daemon = foundation.Daemon(bin_dir)
    argvs = {}
    try:
        for label, machine in (("berth-default", None), ("raw-pc", "pc")):  # raw-pc: edited in variants
            name = f"boot-{label}"
            daemon.request("POST", "/v1/domains", foundation.guest_spec(name, machine))
            daemon.berth("start", name)
            info = daemon.request("GET", f"/v1/domains/{name}")
            argv = [a.decode() for a in open(f"/proc/{info['pid']}/cmdline", "rb").read().split(b"\0")[:-1]]
            fds = foundation.fd_paths(info["pid"])
            daemon.request("POST", f"/v1/domains/{name}/destroy?wait=true")
            argv = foundation.raw_argv(argv, "CONSOLE", fds, initrd=initrd)
            kernel = argv[argv.index("-kernel") + 1]
            if kernel.startswith(daemon.dir):  # berthd's unpacked kernel: it goes with berthd's state
                shutil.copy(kernel, f"{os.path.dirname(initrd)}/{label}-{os.path.basename(kernel)}")
                argv = replace(argv, "-kernel", f"{os.path.dirname(initrd)}/{label}-{os.path.basename(kernel)}")
            argvs[label] = argv
    finally:
        daemon.stop()
    return argvs


def replace(argv, option, value):
    argv = list(argv)
    argv[argv.index(option) + 1] = value
    return argv


def machine_with(argv, *extra):
    machine = argv[argv.index("-machine") + 1]
    return replace(argv, "-machine", ",".join([machine, *extra]))


NO_THP = "[no-thp]"  # a variant's first word: run it as berthd runs a TCG QEMU, without THP
V2 = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+cx16"  # x86-64-v2 on QEMU's own base model
NO_AVX = "max,erms=off,avx=off,avx2=off,avx512f=off"


def without(argv, option):
    """argv less one option and its value (QEMU then uses its default)."""
    at = argv.index(option)
    return argv[:at] + argv[at + 2:]


def variants(argvs, vmlinux=None):
    """Berth's command lines, the reference and the candidates (edits of them), by name.

    raw-pc is the reference: QEMU with -M pc and a plain `-cpu max`, Berth's other arguments
    unchanged (what bench/foundation.py called raw -M pc); raw-pc-qemu64 is the same without
    `-cpu` at all (QEMU's default model for pc, qemu64). berth-default boots the kernel Berth
    unpacked (PVH) when it did; microvm-bzimage is it with the bzImage, as before, and the
    microvm-* candidates are edits of that. With `vmlinux` (the ELF this bench extracts from
    the bzImage), the -pvh variants boot it through its PVH entry. Candidates that did not help
    are kept so the next run shows them again."""
    pc, default = argvs["raw-pc"], argvs["berth-default"]
    plain_pc = replace(pc, "-cpu", "max")
    bz = replace(default, "-kernel", f"{GUEST}/vmlinuz")
    table = {
        "raw-pc": plain_pc,
        "raw-pc-qemu64": without(pc, "-cpu"),
        "berth-pc": pc,
        "berth-default": default,
        "microvm-bzimage": bz,
        "microvm-plain-max": replace(bz, "-cpu", "max"),
        "pc+qboot": plain_pc + ["-bios", QBOOT],
        "microvm-no-la57": replace(bz, "-cpu", "max,erms=off,la57=off"),
        "microvm-tb-1G": replace(bz, "-accel", "tcg"),
        "microvm-qemu64": replace(bz, "-cpu", "qemu64"),
        "microvm-v2": replace(bz, "-cpu", V2),
        "microvm-nehalem": replace(bz, "-cpu", "Nehalem"),
        "microvm-westmere": replace(bz, "-cpu", "Westmere"),
        "microvm-max-noavx": replace(bz, "-cpu", NO_AVX),
        "pc-v2": replace(pc, "-cpu", V2),
        # microvm knobs on Berth's default (PVH) command line: legacy devices the kernel probes,
        # the option ROM, and TCG's buffer and threading (issue 15, helper boot6).
        "default-pit-off": machine_with(default, "pit=off"),
        "default-pic-off": machine_with(default, "pic=off"),
        "default-pit-pic-off": machine_with(default, "pit=off", "pic=off"),
        "default-rtc-off": machine_with(default, "rtc=off"),
        "default-optrom-off": machine_with(default, "x-option-roms=off"),
        "default-tb-128": replace(default, "-accel", "tcg,tb-size=128"),
        "default-tb-1G": replace(default, "-accel", "tcg"),
        "default-single": replace(default, "-accel", default[default.index("-accel") + 1] + ",thread=single"),
        # How berthd runs them since boot6: without transparent huge pages under TCG.
        "berth-default-nothp": [NO_THP] + default,
        "berth-pc-nothp": [NO_THP] + pc,
        "raw-pc-nothp": [NO_THP] + plain_pc,
    }
    if vmlinux:
        table["microvm-pvh"] = replace(bz, "-kernel", vmlinux)
        table["microvm-v2-pvh"] = replace(replace(bz, "-cpu", V2), "-kernel", vmlinux)
    return table


def extract_vmlinux(work):
    """The kernel's ELF from the test guest's bzImage (its compressed payload, by the setup
    header's payload_offset/length), or None when it has no PVH entry note or no tool decodes it."""
    data = open(f"{GUEST}/vmlinuz", "rb").read()
    setup = ((data[0x1F1] or 4) + 1) * 512
    offset, length = int.from_bytes(data[0x248:0x24C], "little"), int.from_bytes(data[0x24C:0x250], "little")
    payload = data[setup + offset:setup + offset + length]
    tools = ((b"\x02\x21\x4c\x18", "lz4"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\xfd7zXZ", "xz"), (b"\x1f\x8b", "gzip"))
    tool = next((t for magic, t in tools if payload.startswith(magic)), None)
    if tool is None or shutil.which(tool) is None:
        return None
    path = f"{work}/vmlinux"
    with open(path, "wb") as out:
        subprocess.run([tool, "-dc"], input=payload, stdout=out, stderr=subprocess.DEVNULL)
    notes = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    return path if "(0x00000012)" in notes else None  # XEN_ELFNOTE_PHYS32_ENTRY


def without_huge_pages():
    """In the child before exec: transparent huge pages off (PR_SET_THP_DISABLE, kept across
    exec), as berthd starts a TCG guest's QEMU (Spawn.withoutHugePages)."""
    if ctypes.CDLL(None, use_errno=True).prctl(41, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_THP_DISABLE)")


def boot(argv, timeout, keep=None):
    """One foreground run; returns the marker times (seconds from exec). A variant whose argv
    starts with NO_THP runs the rest without transparent huge pages."""
    hugepages = argv[:1] != [NO_THP]
    argv = argv if hugepages else argv[1:]
    qmp = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    own = tempfile.mkdtemp(prefix="bb-boot-run-", dir="/tmp")
    path = f"{own}/qmp.sock"
    qmp.bind(path)
    qmp.listen(1)
    debug_r, debug_w = os.pipe()
    serial_r, serial_w = os.pipe()
    argv = [a if a != "file,id=console0,path=CONSOLE" else f"file,id=console0,path=/proc/self/fd/{serial_w}"
            for a in argv]
    argv += ["-chardev", f"socket,id=qmp,fd={qmp.fileno()},server=on,wait=off", "-mon", "chardev=qmp,mode=control",
             "-chardev", f"file,id=dbg,path=/proc/self/fd/{debug_w}", "-device", "isa-debugcon,iobase=0x402,chardev=dbg"]
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    start = time.monotonic()
    errors = open(f"{own}/stderr", "w+b")  # a file: a pipe nobody reads would stall QEMU once full
    proc = subprocess.Popen(argv, pass_fds=(qmp.fileno(), debug_w, serial_w),
                            preexec_fn=None if hugepages else without_huge_pages,
                            stdout=subprocess.DEVNULL, stderr=errors)
    os.close(debug_w)
    os.close(serial_w)
    client.connect(path)
    marks, debug, serial, streams = {}, b"", b"", {client.fileno(): "qmp", debug_r: "debug", serial_r: "serial"}
    try:
        while "ready" not in marks:
            left = timeout - (time.monotonic() - start)
            if left <= 0 or proc.poll() is not None:
                status = proc.poll()
                proc.kill()
                proc.wait()
                errors.seek(0)
                raise RuntimeError(f"no BERTH-INIT-READY (exit {status}): {errors.read()[-300:]!r}")
            readable, _, _ = select.select(list(streams), [], [], min(left, 1))
            now = time.monotonic() - start
            for fd in readable:
                kind = streams[fd]
                data = os.read(fd, 65536)
                if not data:
                    del streams[fd]
                    continue
                marks.setdefault(kind, now)
                if kind == "serial":
                    serial += data
                    if b"Linux version" in serial:
                        marks.setdefault("console", now)
                if kind == "debug":
                    debug += data
                    if b"Booting from ROM" in debug:
                        marks.setdefault("rom", now)
                    for key, needle in (("init", b"BERTH-INIT-START uptime="), ("ready", b"BERTH-INIT-READY uptime=")):
                        at = debug.find(needle)
                        if key not in marks and at >= 0 and b"\n" in debug[at:]:
                            marks[key] = now
                            marks["cpu " + key] = cpu_seconds(proc.pid)
                            marks["queued " + key] = vcpu_queued(proc.pid)
                    if debug.startswith((b"SeaBIOS", b"\n")) or b"SeaBIOS" in debug[:200]:
                        marks.setdefault("fw", marks["debug"])
    finally:
        proc.kill()
        proc.wait()
        for s in (qmp, client):
            s.close()
        os.close(debug_r)
        os.close(serial_r)
        errors.close()
        shutil.rmtree(own, ignore_errors=True)
    if keep is not None:
        keep["serial"], keep["debug"] = serial, debug
    return marks


def cpu_seconds(pid):
    """QEMU's CPU time so far, every thread (user + system)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vcpu_queued(pid):
    """Seconds the vCPU thread (the thread that ran longest) spent runnable but waiting for a
    host CPU (schedstat's second field): time a loaded host took, which a quiet host would not."""
    stats = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                stats.append([int(v) for v in f.read().split()[:2]])
        except OSError:
            pass
    return max(stats)[1] / 1e9 if stats else 0.0


PHASES = (("qemu", "start", "qmp"), ("firmware", "qmp", "rom"), ("load", "rom", "serial"), ("fw+load", "qmp", "serial"),
          ("decomp", "serial", "console"), ("kernel", "console", "init"), ("initrc", "init", "ready"))


def phases(marks):
    marks = dict(marks, start=0.0)
    out = {}
    for name, a, b in PHASES:
        if a in marks and b in marks:
            out[name] = marks[b] - marks[a]
    out["to init"] = marks["init"]
    out["to ready"] = marks["ready"]
    out["cpu init"] = marks["cpu init"]
    out["cpu ready"] = marks["cpu ready"]
    out["unq init"] = marks["init"] - marks["queued init"]
    out["unq ready"] = marks["ready"] - marks["queued ready"]
    return out


def copy_speed(table, names, rounds, timeout):
    """The mechanism behind `erms=off`, inside the guest: `dd` of 300 MiB from /dev/zero to
    /dev/null (the kernel's clear_user/copy loops), timed by busybox `time`, run through the test
    guest's berth.run= (a diagnostic command line, not Berth's)."""
    command = 'berth.mode=poweroff berth.run="time dd if=/dev/zero of=/dev/null bs=1M count=300"'
    print(f"== in-guest copy: {command}, seconds by the guest's clock")
    for name in names:
        times = []
        for _ in range(rounds):
            work = tempfile.mkdtemp(prefix="bb-copy-", dir="/tmp")
            argv = table[name]
            argv = replace(argv, "-append", argv[argv.index("-append") + 1].replace("berth.mode=stay", command))
            argv = [a.replace("path=CONSOLE", f"path={work}/console.log") for a in argv]
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
            log = open(f"{work}/console.log", errors="replace").read()
            shutil.rmtree(work, ignore_errors=True)
            found = re.search(r"^real\s+(\d+)m\s*([\d.]+)s", log, re.MULTILINE)  # busybox: "real\t0m 1.16s"
            if found:
                times.append(int(found.group(1)) * 60 + float(found.group(2)))
        shown = " ".join(f"{t:.2f}" for t in times)
        print(f"  {name:18s} " + (f"median {statistics.median(times):6.2f} s   ({shown})" if times else "no result"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=f"{REPO}/.build/debug")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default="")
    parser.add_argument("--timeout", type=float, default=240)
    parser.add_argument("--copy", action="store_true", help="also time a 300 MiB dd inside the guest")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bb-boot-", dir="/tmp")
    try:
        initrd = marked_initrd(work)
        table = variants(berth_argvs(args.bin, initrd), extract_vmlinux(work))
        names = [n for n in args.variants.split(",") if n] or list(table)
        for name in names:
            print(f"  {name}: {' '.join(table[name])}", flush=True)
        runs = {name: [] for name in names}
        for round_ in range(args.rounds):
            random.shuffle(names)  # no variant always runs first, or last, as the load changes
            for name in names:
                try:
                    runs[name].append(phases(boot(table[name], args.timeout)))
                except RuntimeError as error:
                    print(f"  round {round_ + 1} {name}: {error}", flush=True)
            print(f"  round {round_ + 1} done, load {os.getloadavg()[0]:.1f}", flush=True)
        report(runs, args.rounds)
        if args.copy:
            copy_speed(table, ["berth-default", "microvm-bzimage", "microvm-plain-max"], 3, args.timeout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(runs, rounds):
    def median(rows, key):
        values = [r[key] for r in rows if key in r]
        return statistics.median(values) if values else None

    def table(title, columns, extra=lambda rows: ""):
        print(title)
        print(f"  {'variant':18s}" + "".join(f"{c:>10s}" for c in columns) + extra(None))
        for name, rows in runs.items():
            if not rows:
                print(f"  {name:18s} no successful run")
                continue
            cells = "".join(f"{'-':>10s}" if median(rows, c) is None else f"{median(rows, c):10.3f}" for c in columns)
            print(f"  {name:18s}{cells}{extra(rows)}")

    table(f"== where the time goes: phases, medians of {rounds} interleaved rounds, seconds",
          [p[0] for p in PHASES])
    ratios = ("to init", "to ready", "cpu init", "unq init", "unq ready")
    base = {key: median(runs["raw-pc"], key) for key in ratios} if runs.get("raw-pc") else None

    def shares(rows):
        if rows is None:
            return "".join(f"{c + '/pc':>13s}" for c in ratios) + "  runs" if base else "  runs"
        cells = "".join(f"{median(rows, k) / base[k]:13.3f}" for k in ratios) if base else ""
        return f"{cells}  {len(rows):4d}"

    table("== totals from QEMU's exec (cpu: QEMU's CPU time; unq: less the vCPU's wait for a host CPU), "
          "and against raw-pc", ["to init", "to ready", "cpu init", "cpu ready", "unq init", "unq ready"], shares)


if __name__ == "__main__":
    main()
