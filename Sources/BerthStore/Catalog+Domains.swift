import BerthModel
import FoundationEssentials

extension Catalog {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }()

    /// Stores a new domain. Missing MACs are generated (unique across the catalog).
    /// `install` and `kickstart` (a domain `berth install` made) go in the same transaction: a
    /// berthd killed at any point has stored all of them or none.
    /// - Throws: `BerthError` `.alreadyExists` naming the clash (name, UUID, MAC, disk).
    @discardableResult
    public func define(_ spec: DomainSpec, install: InstallRecord? = nil, kickstart: String? = nil) throws -> DomainSpec {
        try spec.validate()
        return try database.write { db in
            let stored = try insert(spec, db: db)
            if let install { try storeInstall(stored.name, install, db: db) }
            if let kickstart {
                try db.execute(sql: "UPDATE domain SET kickstart = ? WHERE name = ?", arguments: [kickstart, stored.name])
            }
            return stored
        }
    }

    /// `define`'s insert inside a transaction the caller holds.
    private func insert(_ spec: DomainSpec, db: SQLiteConnection) throws -> DomainSpec {
        var spec = spec
        if let owner = try String.fetchOne(db, sql: "SELECT name FROM domain WHERE name = ?", arguments: [spec.name]) {
            throw BerthError.nameInUse(owner)
        }
        if let owner = try String.fetchOne(
            db, sql: "SELECT name FROM domain WHERE uuid = ?", arguments: [spec.uuid.uuidString])
        {
            throw BerthError(
                .alreadyExists, "UUID \(spec.uuid) already belongs to domain '\(owner)'.",
                remedy: "Leave 'uuid' out to have one generated, or undefine '\(owner)' first.")
        }
        try assignMACs(&spec, db: db, excluding: nil)
        try checkDisks(spec, db: db, excluding: nil)
        let now = CatalogDate.text(Date())
        try db.execute(
            sql: """
                INSERT INTO domain (name, uuid, spec, memory, vcpus, autostart, createdAt, updatedAt)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                spec.name, spec.uuid.uuidString, try Self.json(spec), spec.memory, spec.vcpus, spec.autostart,
                now, now,
            ])
        try insertClaims(spec, id: db.lastInsertedRowID, db: db)
        return spec
    }

    /// Replaces a domain's definition (same name); takes effect at its next start.
    @discardableResult
    public func update(_ spec: DomainSpec) throws -> DomainSpec {
        try spec.validate()
        return try database.write { db in try replace(spec, db: db) }
    }

    /// `update`'s work inside a transaction the caller holds.
    func replace(_ spec: DomainSpec, db: SQLiteConnection) throws -> DomainSpec {
        var spec = spec
        guard
            let row = try SQLiteRow.fetchOne(
                db, sql: "SELECT id, uuid, spec FROM domain WHERE name = ?", arguments: [spec.name])
        else { throw BerthError.unknownDomain(spec.name) }
        let id: Int64 = try row["id"]
        let uuid: String = try row["uuid"]
        // A NIC given without a MAC keeps the one it had (as the install phases rely on):
        // a guest's address must not change because its definition was edited.
        if let old = try? JSONDecoder().decode(DomainSpec.self, from: Data((row["spec"] as String).utf8)) {
            for index in spec.nics.indices where spec.nics[index].mac == nil && index < old.nics.count {
                spec.nics[index].mac = old.nics[index].mac
            }
        }
        guard uuid == spec.uuid.uuidString else {
            throw BerthError(
                .invalidArgument, "The new definition of '\(spec.name)' has another UUID (\(spec.uuid)).",
                remedy: "Keep the UUID \(uuid) or leave 'uuid' out.")
        }
        try db.execute(sql: "DELETE FROM nic WHERE domainId = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM disk WHERE domainId = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM dhcp_host WHERE domainId = ?", arguments: [id])
        try assignMACs(&spec, db: db, excluding: id)
        try checkDisks(spec, db: db, excluding: id)
        try db.execute(
            sql: "UPDATE domain SET spec = ?, memory = ?, vcpus = ?, autostart = ?, updatedAt = ? WHERE id = ?",
            arguments: [try Self.json(spec), spec.memory, spec.vcpus, spec.autostart, CatalogDate.text(Date()), id])
        try insertClaims(spec, id: id, db: db)
        return spec
    }

    /// Removes a domain and frees its name, MACs and disks.
    public func undefine(_ name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM domain WHERE name = ?", arguments: [name])
            if db.changesCount == 0 { throw BerthError.unknownDomain(name) }
        }
    }

    public func domain(named name: String) throws -> DomainRecord {
        try database.read { db in
            guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT * FROM domain WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownDomain(name)
            }
            return try Self.record(row)
        }
    }

    public func allDomains() throws -> [DomainRecord] {
        try database.read { db in
            try SQLiteRow.fetchAll(db, sql: "SELECT * FROM domain ORDER BY name").map(Self.record)
        }
    }

    /// The rows of `berth list`, read from columns only (no JSON decoding), so listing
    /// a thousand domains stays fast.
    public func summaries() throws -> [DomainSummary] {
        // Columns by index and UUIDs by `UUID(catalogText:)`: with 10,000 domains, GRDB's
        // by-name lookup and Foundation's `UUID(uuidString:)` were a sixth of a list request.
        try database.read { db in
            var summaries: [DomainSummary] = []
            try db.forEachRow(sql: "SELECT name, uuid, state, memory, vcpus, autostart FROM domain ORDER BY name") { row in
                let uuid: String = try row[1]
                summaries.append(
                    DomainSummary(
                        name: try row[0], uuid: UUID(catalogText: uuid) ?? UUID(uuidString: uuid) ?? UUID(),
                        state: DomainState(rawValue: try row[2]) ?? .shutoff, memory: try row[3], vcpus: try row[4],
                        autostart: try row[5]))
            }
            return summaries
        }
    }

    public func setDesiredState(_ name: String, _ state: DomainState) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE domain SET desiredState = ? WHERE name = ?", arguments: [state.rawValue, name])
            if db.changesCount == 0 { throw BerthError.unknownDomain(name) }
        }
    }

    public func setObserved(_ name: String, _ observed: ObservedState) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE domain SET state = ?, pid = ?, accel = ?, lastError = ?, startedAt = ? WHERE name = ?",
                arguments: [
                    observed.state.rawValue, observed.pid, observed.accel?.rawValue, observed.lastError,
                    CatalogDate.text(observed.startedAt), name,
                ])
            if db.changesCount == 0 { throw BerthError.unknownDomain(name) }
        }
    }

    public func setAutostart(_ name: String, _ autostart: Bool) throws {
        try database.write { db in
            guard let text = try String.fetchOne(db, sql: "SELECT spec FROM domain WHERE name = ?", arguments: [name]),
                var spec = try? JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
            else { throw BerthError.unknownDomain(name) }
            spec.autostart = autostart
            try db.execute(
                sql: "UPDATE domain SET spec = ?, autostart = ?, updatedAt = ? WHERE name = ?",
                arguments: [try Self.json(spec), autostart, CatalogDate.text(Date()), name])
        }
    }

    /// The kickstart a domain was installed with, kept for `berth kickstart NAME`.
    public func setKickstart(_ name: String, _ text: String?) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE domain SET kickstart = ? WHERE name = ?", arguments: [text, name])
            if db.changesCount == 0 { throw BerthError.unknownDomain(name) }
        }
    }

    public func kickstart(_ name: String) throws -> String? {
        try database.read { db in
            guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT kickstart FROM domain WHERE name = ?", arguments: [name])
            else { throw BerthError.unknownDomain(name) }
            return try row["kickstart"]
        }
    }

    /// Stores the definition that replaces `name`'s when its guest next powers off or reboots
    /// by itself, and whether to start it then; nil clears it. Checked now, applied later.
    public func setNextDefinition(_ name: String, _ spec: DomainSpec?, start: Bool) throws {
        if let spec {
            try spec.validate()
            let current = try domain(named: name).spec
            guard spec.name == name, spec.uuid == current.uuid else {
                throw BerthError(
                    .invalidArgument, "The next definition of '\(name)' must keep its name and UUID.",
                    remedy: "Give the same name and UUID (\(current.uuid)), or leave 'uuid' out.")
            }
        }
        try database.write { db in
            try db.execute(
                sql: "UPDATE domain SET nextSpec = ?, nextStart = ? WHERE name = ?",
                arguments: [try spec.map(Self.json), start, name])
            if db.changesCount == 0 { throw BerthError.unknownDomain(name) }
        }
    }

    /// `update` and `setNextDefinition` in one transaction: an installer's definition with the
    /// installed one waiting. A berthd killed at any point has stored both or neither.
    @discardableResult
    public func update(_ spec: DomainSpec, next: DomainSpec, start: Bool) throws -> DomainSpec {
        try spec.validate()
        try next.validate()
        return try database.write { db in
            let current = try replace(spec, db: db)
            guard next.name == current.name, next.uuid == current.uuid else {
                throw BerthError(
                    .invalidArgument, "The next definition of '\(current.name)' must keep its name and UUID.",
                    remedy: "Give the same name and UUID (\(current.uuid)), or leave 'uuid' out.")
            }
            try db.execute(
                sql: "UPDATE domain SET nextSpec = ?, nextStart = ? WHERE name = ?", arguments: [try Self.json(next), start, current.name])
            return current
        }
    }

    /// The next definition waiting for `name` (the installed one, while its installer runs).
    public func nextDefinition(_ name: String) throws -> DomainSpec? {
        try database.read { db in
            guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT uuid, nextSpec FROM domain WHERE name = ?", arguments: [name])
            else { throw BerthError.unknownDomain(name) }
            guard let text = try row["nextSpec"] as String? else { return nil }
            var spec = try JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
            if let uuid = try UUID(uuidString: row["uuid"]) { spec.uuid = uuid }
            return spec
        }
    }

    /// Whether `name` has a next definition waiting (an install in progress).
    public func hasNextDefinition(_ name: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(db, sql: "SELECT nextSpec IS NOT NULL FROM domain WHERE name = ?", arguments: [name]) ?? false
        }
    }

    /// Replaces the definition with the stored next one, if any, and clears it.
    /// - Returns: whether the domain should start now; nil when there was none.
    /// One transaction: a berthd killed at any point has either switched and cleared the next
    /// definition, or done neither (never switched twice, never lost the switch).
    public func applyNextDefinition(_ name: String) throws -> Bool? {
        try database.write { db in
            guard
                let pending = try SQLiteRow.fetchOne(
                    db, sql: "SELECT uuid, nextSpec, nextStart FROM domain WHERE name = ?", arguments: [name])
            else { throw BerthError.unknownDomain(name) }
            guard let text = try pending["nextSpec"] as String? else { return nil }
            var spec = try JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
            if let uuid = try UUID(uuidString: pending["uuid"]) { spec.uuid = uuid }
            try spec.validate()
            _ = try replace(spec, db: db)
            try db.execute(sql: "UPDATE domain SET nextSpec = NULL, nextStart = 0 WHERE name = ?", arguments: [name])
            return try pending["nextStart"] as Bool
        }
    }

    // MARK: - Helpers

    private func assignMACs(_ spec: inout DomainSpec, db: SQLiteConnection, excluding id: Int64?) throws {
        for index in spec.nics.indices {
            if let mac = spec.nics[index].mac {
                if let owner = try String.fetchOne(
                    db,
                    sql: "SELECT d.name FROM nic n JOIN domain d ON d.id = n.domainId WHERE n.mac = ? AND d.id IS NOT ?",
                    arguments: [mac.description, id])
                {
                    throw BerthError(
                        .alreadyExists, "MAC \(mac) is already used by domain '\(owner)'.",
                        remedy: "Choose another MAC, or leave it out to have one generated.")
                }
            } else {
                var mac = MACAddress.random()
                while try Bool.fetchOne(db, sql: "SELECT 1 FROM nic WHERE mac = ?", arguments: [mac.description]) == true {
                    mac = MACAddress.random()
                }
                spec.nics[index].mac = mac
            }
        }
    }

    private func checkDisks(_ spec: DomainSpec, db: SQLiteConnection, excluding id: Int64?) throws {
        for disk in spec.disks where !disk.readOnly {
            if let owner = try writableOwner(of: disk.path, excluding: id, db: db) {
                throw BerthError(
                    .alreadyExists, "Disk \(disk.path) is already in use by domain '\(owner)'.",
                    remedy: "Give this domain its own disk, or attach the shared one read-only.")
            }
        }
    }

    private func insertClaims(_ spec: DomainSpec, id: Int64, db: SQLiteConnection) throws {
        for nic in spec.nics {
            if let mac = nic.mac {
                try db.execute(sql: "INSERT INTO nic (mac, domainId) VALUES (?, ?)", arguments: [mac.description, id])
            }
        }
        for disk in spec.disks {
            try db.execute(
                sql: "INSERT INTO disk (path, domainId, readOnly) VALUES (?, ?, ?)",
                arguments: [disk.path, id, disk.readOnly])
        }
        try claimAddresses(spec, domainID: id, db: db)
    }

    static func json(_ spec: DomainSpec) throws -> String {
        String(decoding: try encoder.encode(spec), as: UTF8.self)
    }

    static func record(_ row: SQLiteRow) throws -> DomainRecord {
        let text: String = try row["spec"]
        let spec = try JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
        return try DomainRecord(
            spec: spec,
            desiredState: DomainState(rawValue: row["desiredState"]) ?? .shutoff,
            state: DomainState(rawValue: row["state"]) ?? .shutoff,
            pid: row["pid"],
            accel: (row["accel"] as String?).flatMap(Accelerator.init(rawValue:)),
            lastError: row["lastError"],
            startedAt: CatalogDate.date(row["startedAt"]))
    }
}
