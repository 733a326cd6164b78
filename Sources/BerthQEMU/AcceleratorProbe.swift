import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Decides between KVM and TCG by looking at the host, cheaply (no guest is booted).
///
/// `/dev/kvm` existing is not enough: a paravirtual KVM (`kvm_pvm`) provides `/dev/kvm` yet
/// runs only PVM-enabled guest kernels; stock kernels hang under it and `-cpu host` aborts.
public enum AcceleratorProbe {
    /// What the probe found; `verdict(from:)` turns it into a decision.
    public struct Facts: Sendable, Equatable {
        public enum Device: Sendable, Equatable {
            case missing
            /// It exists but cannot be opened read-write (permissions: the `kvm` group).
            case unopenable(String)
            /// Opened; `apiVersion` is KVM_GET_API_VERSION's answer (12 on every real KVM), nil
            /// when the ioctl failed (not a KVM device).
            case open(apiVersion: Int?)
        }

        /// `vmx`, `svm` and `hypervisor` when present in the first `flags` line of cpuinfo.
        public var cpuFlags: Set<String>
        public var device: Device
        /// Loaded KVM modules among `kvm_intel`, `kvm_amd`, `kvm_pvm` (from /proc/modules or
        /// /sys/module, which also lists built-in modules that have parameters).
        public var modules: [String]

        public init(cpuFlags: Set<String>, device: Device, modules: [String]) {
            self.cpuFlags = cpuFlags
            self.device = device
            self.modules = modules
        }
    }

    static let vendorModules = ["kvm_intel", "kvm_amd", "kvm_pvm"]

    /// Reads the host: cpuinfo flags, `/dev/kvm`, the KVM vendor module.
    public static func gather(procRoot: String = "/proc", sysRoot: String = "/sys", device: String = "/dev/kvm")
        -> Facts
    {
        var flags = Set<String>()
        if let cpuinfo = try? String(contentsOfFile: procRoot + "/cpuinfo", encoding: .utf8),
            let line = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
            let colon = line.firstIndex(of: ":")
        {
            // The seed's `egrep '^flags.*(vmx|svm)' /proc/cpuinfo`, as whole words.
            flags = Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
                .intersection(["vmx", "svm", "hypervisor"])
        }

        var modules: [String] = []
        let procModules = (try? String(contentsOfFile: procRoot + "/modules", encoding: .utf8)) ?? ""
        let loaded = Set(
            procModules.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) })
        for module in vendorModules
        where loaded.contains(module) || FileManager.default.fileExists(atPath: "\(sysRoot)/module/\(module)") {
            modules.append(module)
        }

        let state: Facts.Device
        if access(device, F_OK) != 0 {
            state = .missing
        } else {
            let fd = open(device, O_RDWR | O_CLOEXEC)
            if fd < 0 {
                state = .unopenable(String(cString: strerror(errno)))
            } else {
                // KVM_GET_API_VERSION = _IO(0xAE, 0x00)
                let version = ioctl(fd, 0xAE00, 0)
                close(fd)
                state = .open(apiVersion: version >= 0 ? Int(version) : nil)
            }
        }
        return Facts(cpuFlags: flags, device: state, modules: modules)
    }

    /// Turns facts into a verdict with one `HostCheck` per fact, like `virt-host-validate`.
    public static func verdict(from facts: Facts) -> AcceleratorVerdict {
        var checks: [HostCheck] = []
        let hardware = facts.cpuFlags.contains("vmx") ? "vmx" : facts.cpuFlags.contains("svm") ? "svm" : nil
        if let hardware {
            checks.append(
                HostCheck(
                    name: "Hardware virtualization", result: .pass,
                    detail: "CPU has \(hardware) (\(hardware == "vmx" ? "Intel VT-x" : "AMD-V"))"))
        } else {
            checks.append(
                HostCheck(
                    name: "Hardware virtualization", result: .warn,
                    detail: "no vmx or svm flag in /proc/cpuinfo"
                        + (facts.cpuFlags.contains("hypervisor")
                            ? " (this host is itself a virtual machine without nested virtualization)" : "")))
        }

        var kvmUsable = false
        switch facts.device {
        case .missing:
            checks.append(HostCheck(name: "/dev/kvm", result: .fail, detail: "does not exist (no KVM module loaded)"))
        case .unopenable(let why):
            checks.append(
                HostCheck(name: "/dev/kvm", result: .fail, detail: "exists but cannot be opened read-write: \(why)"))
        case .open(let version?) where version == 12:
            checks.append(HostCheck(name: "/dev/kvm", result: .pass, detail: "opened; KVM API version 12"))
            kvmUsable = true
        case .open(let version):
            checks.append(
                HostCheck(
                    name: "/dev/kvm", result: .fail,
                    detail: version.map { "unexpected KVM API version \($0)" } ?? "opened but is not a KVM device"))
        }

        let pvm = facts.modules.contains("kvm_pvm")
        let vendor = facts.modules.filter { $0 != "kvm_pvm" }
        if pvm {
            checks.append(
                HostCheck(
                    name: "KVM module", result: .fail,
                    detail:
                        "kvm_pvm: paravirtual KVM runs only PVM-enabled guest kernels; stock kernels hang and -cpu host aborts"
                ))
        } else if let module = vendor.first {
            checks.append(HostCheck(name: "KVM module", result: .pass, detail: "\(module) (runs unmodified guests)"))
        } else if kvmUsable {
            checks.append(
                HostCheck(name: "KVM module", result: .warn, detail: "cannot tell which module provides /dev/kvm"))
        } else {
            checks.append(HostCheck(name: "KVM module", result: .info, detail: "none of kvm_intel, kvm_amd loaded"))
        }
        checks.append(HostCheck(name: "TCG", result: .pass, detail: "software emulation is always available (slower)"))

        let reason: String
        let chosen: Accelerator
        if !kvmUsable {
            chosen = .tcg
            reason =
                switch facts.device {
                case .missing: "/dev/kvm does not exist"
                case .unopenable(let why): "/dev/kvm cannot be opened (\(why))"
                default: "/dev/kvm is not a working KVM device"
                }
        } else if pvm {
            chosen = .tcg
            reason = "/dev/kvm is kvm_pvm (paravirtual KVM): stock guest kernels hang under it"
        } else if !vendor.isEmpty || hardware != nil {
            chosen = .kvm
            reason =
                "/dev/kvm works and is provided by \(vendor.first ?? "the kernel") for a CPU with \(hardware ?? "hardware virtualization")"
        } else {
            chosen = .tcg
            reason =
                "/dev/kvm opens but neither the CPU flags nor a kvm_intel/kvm_amd module show hardware virtualization"
        }
        return AcceleratorVerdict(chosen: chosen, reason: reason, checks: checks)
    }

    /// Probes this host.
    public static func probe() -> AcceleratorVerdict { verdict(from: gather()) }

    /// Probes the host and adds a line for the QEMU binary: everything `berth host-check` prints.
    public static func hostCheck(qemuOverride: String? = nil) async -> (verdict: AcceleratorVerdict, qemu: QEMUBinary?) {
        var verdict = probe()
        verdict.checks.append(DeviceMapper.hostCheck())
        if verdict.chosen == .tcg {
            verdict.checks.append(
                HostTSC.kHz.map {
                    HostCheck(
                        name: "microvm under TCG", result: .pass, detail: "host TSC \($0) kHz, given to microvm guests")
                }
                    ?? HostCheck(
                        name: "microvm under TCG", result: .warn,
                        detail: "host TSC rate unknown: direct-kernel guests get the pc machine (slower boot)"))
        }
        do {
            let qemu = try await QEMUBinary.find(override: qemuOverride)
            verdict.checks.insert(
                HostCheck(name: "QEMU", result: .pass, detail: "\(qemu.path) version \(qemu.version)"), at: 0)
            return (verdict, qemu)
        } catch let error as BerthError {
            verdict.checks.insert(HostCheck(name: "QEMU", result: .fail, detail: error.description), at: 0)
        } catch {
            verdict.checks.insert(HostCheck(name: "QEMU", result: .fail, detail: "\(error)"), at: 0)
        }
        return (verdict, nil)
    }

    /// The accelerator to run with, given what the user asked (`--accel kvm|tcg|auto`).
    ///
    /// - Throws: `BerthError(.unavailable)` when KVM is asked for but this host cannot run an
    ///   unmodified guest with it.
    public static func resolve(_ requested: Accelerator, verdict: AcceleratorVerdict) throws -> Accelerator {
        switch requested {
        case .auto: return verdict.chosen
        case .tcg: return .tcg
        case .kvm:
            guard verdict.chosen == .kvm else {
                throw BerthError(
                    .unavailable, "KVM was requested but cannot be used on this host: \(verdict.reason).",
                    remedy: "Use --accel tcg (or auto, which picks TCG here); 'berth host-check' shows each check.")
            }
            return .kvm
        }
    }
}
