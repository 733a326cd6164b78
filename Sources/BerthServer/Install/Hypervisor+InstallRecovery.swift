import BerthModel
import FoundationEssentials
import Glibc

/// What a berthd killed during an install leaves, settled at its next start.
///
/// An install fetches the installer into `<state>/install/NAME/`, creates the new disks, then
/// defines the domain with its install record (one transaction). Killed before the define,
/// nothing names those files and disks: the journal `new-disks.json`, written before the first
/// disk is created, lists the disks the run made, and the next start removes them with the
/// directory. Killed after it, the domain owns them: `reinstall` or `undefine` takes it on.
extension Hypervisor {
    struct NewDisks: Codable, Equatable {
        /// Files created at their `--disk path=`.
        var paths: [String] = []
        /// Volumes created in a pool, as `POOL/NAME`.
        var volumes: [String] = []
    }

    static func installDirectory(_ state: String, _ name: String) -> String { state + "/install/" + name }

    static func newDisksJournal(_ state: String, _ name: String) -> String { installDirectory(state, name) + "/new-disks.json" }

    static func writeJournal(_ journal: NewDisks, state: String, name: String) throws {
        let directory = installDirectory(state, name)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let data = try JSONEncoder().encode(journal)
        try data.write(to: URL(fileURLWithPath: newDisksJournal(state, name)), options: .atomic)
    }

    /// Removes what installs interrupted before their domain was defined left: the disks their
    /// journal names (unless a domain has them as disks since) and their `<state>/install/NAME/`.
    /// A defined domain's journal just goes. Returns one line per thing removed (or kept), for the log.
    func sweepInterruptedInstalls() async -> [String] {
        let root = stateDirectory + "/install"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
        var removed: [String] = []
        for name in names {
            let journalPath = Self.newDisksJournal(stateDirectory, name)
            if (try? catalog.domain(named: name)) != nil {
                unlink(journalPath)
                continue
            }
            let journal =
                (try? Data(contentsOf: URL(fileURLWithPath: journalPath)))
                .flatMap { try? JSONDecoder().decode(NewDisks.self, from: $0) } ?? NewDisks()
            for volume in journal.volumes {
                let parts = volume.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2, (try? catalog.volume(pool: parts[0], name: parts[1])) != nil else { continue }
                do {
                    try await deleteVolume(pool: parts[0], name: parts[1])
                    removed.append("Removed volume \(volume), made by an install of '\(name)' killed before its domain was defined")
                } catch {
                    removed.append(
                        "Could not remove volume \(volume), made by an install of '\(name)' killed before its domain was defined: \(error)")
                }
            }
            for path in journal.paths where ((try? catalog.domainsUsing(path: path)) ?? ["?"]).isEmpty {
                if unlink(path) == 0 { removed.append("Removed \(path), made by an install of '\(name)' killed before its domain was defined") }
            }
            if (try? FileManager.default.removeItem(atPath: Self.installDirectory(stateDirectory, name))) != nil {
                removed.append("Removed \(Self.installDirectory(stateDirectory, name)), left by an install of '\(name)' that defined nothing")
            }
        }
        return removed
    }
}
