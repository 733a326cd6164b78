import BerthModel
import FoundationEssentials

/// How a domain was installed: the plan `berth install` sent and the installer berthd booted.
public struct InstallRecord: Sendable, Equatable {
    public var plan: InstallPlan
    /// The installer's kernel command line as it booted (URLs as the guest sees them).
    public var installerCmdline: String
    /// The installer's kernel and initrd in `<state>/install/NAME/`.
    public var kernel: String
    public var initrd: String
    /// An ISO the installer saw as its CD-ROM.
    public var cdrom: String?

    public init(plan: InstallPlan, installerCmdline: String, kernel: String, initrd: String, cdrom: String? = nil) {
        self.plan = plan
        self.installerCmdline = installerCmdline
        self.kernel = kernel
        self.initrd = initrd
        self.cdrom = cdrom
    }
}

extension Catalog {
    /// Stores (or replaces) how `name` was installed. `--initrd-inject` files are not kept:
    /// they are in the stored initrd already.
    public func setInstall(_ name: String, _ record: InstallRecord) throws {
        try database.write { db in try storeInstall(name, record, db: db) }
    }

    /// `setInstall`'s work inside a transaction the caller holds.
    func storeInstall(_ name: String, _ record: InstallRecord, db: SQLiteConnection) throws {
        var plan = record.plan
        plan.initrdInjections = []
        let text = String(decoding: try JSONEncoder().encode(plan), as: UTF8.self)
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [name]) else {
            throw BerthError.unknownDomain(name)
        }
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO install (domainId, plan, installerCmdline, kernel, initrd, cdrom, updatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [id, text, record.installerCmdline, record.kernel, record.initrd, record.cdrom, CatalogDate.text(Date())])
    }

    /// Where the running installer's console output began; nil clears it (the installer is over).
    public func setInstallLogOffset(_ name: String, _ offset: UInt64?) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE install SET logOffset = ? WHERE domainId = (SELECT id FROM domain WHERE name = ?)",
                arguments: [offset.map { Int64(clamping: $0) }, name])
        }
    }

    public func installLogOffset(_ name: String) throws -> UInt64? {
        try database.read { db in
            try Int64.fetchOne(
                db, sql: "SELECT i.logOffset FROM install i JOIN domain d ON d.id = i.domainId WHERE d.name = ?",
                arguments: [name]
            ).map { UInt64(clamping: $0) }
        }
    }

    /// How `name` was installed; nil when it was not installed by berthd.
    public func install(_ name: String) throws -> InstallRecord? {
        try database.read { db in
            guard
                let row = try SQLiteRow.fetchOne(
                    db,
                    sql: "SELECT i.* FROM install i JOIN domain d ON d.id = i.domainId WHERE d.name = ?",
                    arguments: [name])
            else { return nil }
            let text: String = try row["plan"]
            let plan = try JSONDecoder().decode(InstallPlan.self, from: Data(text.utf8))
            return try InstallRecord(
                plan: plan, installerCmdline: row["installerCmdline"], kernel: row["kernel"], initrd: row["initrd"],
                cdrom: row["cdrom"])
        }
    }
}
