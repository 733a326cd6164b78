import ArgumentParser
import BerthModel

struct DomInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dominfo", abstract: "Show a domain's details.")

    @Argument(help: "Domain name.") var name: String
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        if output.json { return try output.printJSON(info) }
        let spec = info.spec
        var rows: [(String, String)] = [
            ("Name", spec.name), ("UUID", spec.uuid.uuidString.lowercased()), ("State", info.state.rawValue),
            ("PID", info.pid.map(String.init) ?? "-"), ("Accelerator", info.accel?.rawValue ?? spec.accel.rawValue),
            ("Memory", "\(spec.memory) MiB"), ("vCPUs", "\(spec.vcpus)"), ("Machine", spec.machine ?? "auto"),
            ("Autostart", spec.autostart ? "enable" : "disable"),
            ("On poweroff/reboot/crash", "\(spec.onPoweroff.rawValue)/\(spec.onReboot.rawValue)/\(spec.onCrash.rawValue)"),
        ]
        if let kernel = spec.kernel { rows.append(("Kernel", kernel)) }
        if let initrd = spec.initrd { rows.append(("Initrd", initrd)) }
        if let cmdline = spec.cmdline { rows.append(("Command line", cmdline)) }
        if spec.bootloader != nil { rows.append(("Bootloader", "berth (kernel from the guest's disk)")) }
        rows.append(("Firmware", Self.firmware(spec)))
        for (index, disk) in spec.disks.enumerated() {
            let volume = disk.volume.map { "volume \($0), " } ?? ""
            let backing = disk.backing.map { ", overlay on \($0.volume ?? $0.path)" } ?? ""
            rows.append(
                (
                    "Disk \(index)",
                    "\(disk.path) (\(volume)\(disk.format?.rawValue ?? "auto"), \(disk.device.rawValue), \(disk.bus.rawValue)\(disk.readOnly ? ", read-only" : "")\(backing))"
                ))
        }
        for (index, nic) in spec.nics.enumerated() {
            rows.append(("NIC \(index)", "\(nic.mode.rawValue) \(nic.mac?.description ?? "")\(nic.bridge.map { " bridge=\($0)" } ?? "")"))
        }
        if let log = info.consoleLog { rows.append(("Console log", log)) }
        if let error = info.lastError { rows.append(("Last error", error)) }
        rows.append(("Managed save", info.managedSave.map { "yes (\($0.path), resumes \($0.state.rawValue))" } ?? "no"))
        if let description = spec.description { rows.append(("Description", description)) }
        for note in spec.notes { rows.append(("Note", note)) }
        let width = (rows.map(\.0.count).max() ?? 0) + 2
        for (key, value) in rows { print((key + ":").padding(toLength: width, withPad: " ", startingAt: 0) + value) }
    }

    /// What boots the guest: SeaBIOS or OVMF, and for a firmware boot its order.
    static func firmware(_ spec: DomainSpec) -> String {
        let firmware = spec.firmware ?? FirmwareSpec()
        var text =
            firmware.kind == .uefi ? "UEFI (OVMF \(firmware.loader ?? FirmwareSpec.defaultLoader), variables \(firmware.nvram ?? "-"))" : "SeaBIOS"
        if spec.kernel != nil || spec.bootloader != nil {
            text += ", booting the kernel Berth gives it"
        } else {
            let order = firmware.bootOrder.isEmpty ? "hd, cdrom" : firmware.bootOrder.map(\.rawValue).joined(separator: ", ")
            text += ", boot order \(order)"
        }
        if let problem = spec.bootProblem { text += " — \(problem)" }
        return text
    }
}

struct DomState: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "domstate", abstract: "Print a domain's state.")

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Also print why it last stopped.") var reason = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        if output.json {
            struct State: Encodable { var state: String; var reason: String? }
            return try output.printJSON(State(state: info.state.rawValue, reason: info.lastError))
        }
        print(info.state.rawValue + (reason ? " (\(info.lastError ?? "no error recorded"))" : ""))
    }
}

struct Autostart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "autostart", abstract: "Start a domain whenever berthd starts.")

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Turn autostart off.") var disable = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.setAutostart(name, !disable) }
        print("Domain '\(name)' \(disable ? "unmarked" : "marked") as autostarted.")
    }

}
