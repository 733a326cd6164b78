import ArgumentParser
import BerthModel

struct DomBlkList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "domblklist", abstract: "List a domain's disks.")

    @Argument(help: "Domain name.") var name: String
    @Flag(help: "Type, device, format and volume too.") var details = false
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var output: OutputOptions

    struct Row: Encodable {
        var target: String
        var source: String
        var volume: String?
        var format: String?
        var device: String
        var readOnly: Bool
    }

    func run() async throws {
        let info = try await connection.run { try await $0.info(name) }
        let rows = Self.targets(info.spec.disks).map { target, disk in
            Row(
                target: target, source: disk.path, volume: disk.volume, format: disk.format?.rawValue,
                device: disk.device.rawValue, readOnly: disk.readOnly)
        }
        if output.json { return try output.printJSON(rows) }
        var table = [(details ? ["Type", "Device"] : []) + ["Target", "Source"] + (details ? ["Format", "Volume"] : [])]
        for row in rows {
            let type = row.source.hasPrefix("/dev/") ? "block" : "file"
            table.append(
                (details ? [type, row.device] : []) + [row.target, row.source] + (details ? [row.format ?? "-", row.volume ?? "-"] : []))
        }
        printTable(table)
    }

    /// The guest's names for the disks, in the order QEMU adds them: vda, vdb … on virtio,
    /// hda … on IDE, sda … on SCSI and SATA (an imported `target` is kept).
    static func targets(_ disks: [DiskSpec]) -> [(String, DiskSpec)] {
        var counters: [String: Int] = [:]
        return disks.map { disk in
            let prefix =
                switch disk.device == .cdrom && disk.bus == .virtio ? .scsi : disk.bus {
                case .virtio: "vd"
                case .ide: "hd"
                case .scsi, .sata: "sd"
                }
            let number = counters[prefix, default: 0]
            counters[prefix] = number + 1
            let letter = String(Character(Unicode.Scalar(UInt8(97 + min(number, 25)))))
            return (prefix + letter, disk)
        }
    }
}
