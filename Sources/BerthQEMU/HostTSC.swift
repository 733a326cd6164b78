import FoundationEssentials
import Glibc

/// The host's TSC rate, which a microvm guest under TCG must be told.
///
/// microvm has no HPET and no ACPI PM timer, so the guest kernel can calibrate its TSC only
/// against the PIT; under TCG on a busy host that fails and the kernel hangs before /init
/// (fixtures/README.md: 15 of 15 boots hung, 40+ of 40+ booted with `tsc_early_khz=`). Under
/// TCG the guest reads the host TSC, so the host rate is the right value.
public enum HostTSC {
    /// kHz, or nil when the host does not say.
    public static let kHz: Int? = read()

    static func read(sysRoot: String = "/sys", procRoot: String = "/proc") -> Int? {
        // Some kernels export it directly.
        if let text = try? String(contentsOfFile: sysRoot + "/devices/system/cpu/cpu0/tsc_freq_khz", encoding: .utf8),
            let khz = Int(text.trimmed()), khz > 0
        {
            return khz
        }
        guard let cpuinfo = try? String(contentsOfFile: procRoot + "/cpuinfo", encoding: .utf8) else { return nil }
        let cpufreq = FileManager.default.fileExists(atPath: sysRoot + "/devices/system/cpu/cpu0/cpufreq")
        return parse(cpuinfo: cpuinfo, cpufreqActive: cpufreq)
    }

    /// With cpufreq active, "cpu MHz" is the current clock, not the TSC rate: prefer the nominal
    /// rate in the model name ("@ 2.60GHz", which is the TSC rate on Intel). Without it (virtual
    /// machines), "cpu MHz" is the kernel's measured TSC rate.
    static func parse(cpuinfo: String, cpufreqActive: Bool) -> Int? {
        let lines = cpuinfo.split(separator: "\n")
        func value(_ key: String) -> Substring? {
            guard let line = lines.first(where: { $0.hasPrefix(key) }), let colon = line.firstIndex(of: ":") else {
                return nil
            }
            return line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
        }
        var nominal: Int?
        if let model = value("model name"), let at = model.firstRange(of: "@ ") {
            let text = model[at.upperBound...]
            if text.hasSuffix("GHz"), let ghz = Double(text.dropLast(3).trimmed()) {
                nominal = Int((ghz * 1_000_000).rounded())
            }
        }
        let measured = value("cpu MHz").flatMap { Double($0.trimmed()) }
            .map { Int(($0 * 1000).rounded()) }
        let result = cpufreqActive ? (nominal ?? measured) : (measured ?? nominal)
        guard let result, (100_000...20_000_000).contains(result) else { return nil }
        return result
    }
}
