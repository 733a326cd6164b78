"""A libvirtd of the benchmark's own, to compare `virsh start` with `berth start` (never part
of Berth).

libvirtd and virtlogd run in a network and mount namespace of their own: the namespace has no
interface but loopback, so nothing libvirt starts reaches any network, and libvirt's
directories (/etc/libvirt, /var/lib/libvirt, /run/libvirt, /var/cache/libvirt,
/var/log/libvirt) are bind mounts of one temporary directory, so the host's are left alone.
virsh reaches the daemon through the socket in that directory.

Host changes, made once: Debian's libvirt-daemon and libvirt-daemon-driver-qemu (without the
recommended default network), and a system user `libvirt-qemu`, which libvirt's QEMU driver
looks up before it reads qemu.conf. QEMU runs as root (qemu.conf): the Debian default user
cannot open /dev/kvm on a host without udev's rules, and libvirt then probes QEMU again at
every start (seconds), which would not be libvirt's usual cost.
"""
import os, shutil, subprocess, tempfile, time

PACKAGES = ["libvirt-daemon", "libvirt-daemon-driver-qemu", "libvirt-clients"]
DIRS = ["/etc/libvirt", "/var/lib/libvirt", "/run/libvirt", "/var/cache/libvirt", "/var/log/libvirt"]


def ensure_installed(repo):
    if not (shutil.which("libvirtd", path="/usr/sbin:/usr/bin") and shutil.which("virsh")):
        subprocess.run([f"{repo}/scripts/install-host-deps", *PACKAGES], check=True, stdout=subprocess.DEVNULL)
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--user-group", "--home-dir", "/var/lib/libvirt",
                        "--shell", "/usr/sbin/nologin", "libvirt-qemu"], check=True)


class Libvirtd:
    """libvirtd in its own namespaces; `virsh(...)` runs virsh against it."""

    def __init__(self, repo):
        ensure_installed(repo)
        self.dir = tempfile.mkdtemp(prefix="bench-libvirt-", dir="/tmp")
        sources = {d: f"{self.dir}/{d.strip('/').replace('/', '-')}" for d in DIRS}
        for source in sources.values():
            os.makedirs(source)
        with open(f"{sources['/etc/libvirt']}/qemu.conf", "w") as f:
            f.write('user = "root"\ngroup = "root"\n')
        mounts = "".join(f"mkdir -p {d} && mount --bind {s} {d}\n" for d, s in sources.items())
        # Pid files inside the bind mounts: the host's /run is left alone.
        script = (f"set -e\n{mounts}/usr/sbin/virtlogd --daemon --pid-file /run/libvirt/virtlogd.pid\n"
                  "exec /usr/sbin/libvirtd --pid-file /run/libvirt/libvirtd.pid\n")
        self.virtlogd_pid_file = f"{sources['/run/libvirt']}/virtlogd.pid"
        self.socket = f"{sources['/run/libvirt']}/libvirt-sock"
        self.uri = f"qemu:///system?socket={self.socket}"
        self.proc = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while subprocess.run(["virsh", "-c", self.uri, "version"], capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"libvirtd did not answer on {self.socket}")
            time.sleep(0.2)

    def virsh(self, *args):
        return subprocess.run(["virsh", "-c", self.uri, *args], check=True, capture_output=True)

    def define_direct_kernel(self, name, kernel, initrd, cmdline, memory_mib):
        """A `pc` guest booting kernel and initrd (copies: libvirt relabels what it boots)."""
        guest = f"{self.dir}/{name}"
        os.makedirs(guest)
        for path in [kernel, initrd]:
            shutil.copy(path, guest)
        xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><kernel>{guest}/{os.path.basename(kernel)}</kernel>
    <initrd>{guest}/{os.path.basename(initrd)}</initrd><cmdline>{cmdline}</cmdline></os>
  <features><acpi/></features>
  <devices><serial type='file'><source path='{guest}/console.log'/></serial><memballoon model='none'/></devices>
</domain>"""
        with open(f"{guest}/domain.xml", "w") as f:
            f.write(xml)
        self.virsh("define", f"{guest}/domain.xml")
        # The first start probes QEMU's capabilities (seconds): done here, not in the timings.
        self.virsh("start", name)
        self.virsh("destroy", name)

    def stop(self):
        # Guests first (libvirtd leaves its QEMUs running when it stops), then the namespace's
        # daemons: virtlogd and libvirtd are the only processes in it besides QEMU.
        listed = subprocess.run(["virsh", "-c", self.uri, "list", "--name"], capture_output=True, text=True)
        for name in listed.stdout.split():
            subprocess.run(["virsh", "-c", self.uri, "destroy", name], capture_output=True)
        self.proc.terminate()
        self.proc.wait()
        try:
            pid = int(open(self.virtlogd_pid_file).read())
            if b"virtlogd" in open(f"/proc/{pid}/cmdline", "rb").read():  # not a reused PID
                os.kill(pid, 15)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
