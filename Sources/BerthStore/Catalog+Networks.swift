import BerthModel
import FoundationEssentials

/// A network as the catalog holds it: the definition (reservations included) and whether
/// berthd last left it running.
public struct NetworkRecord: Sendable, Equatable {
    public var spec: NetworkSpec
    public var active: Bool
}

extension Catalog {
    /// Stores a new network with its reservations.
    /// - Throws: `BerthError` `.alreadyExists` for a name, UUID or bridge in use, or a subnet
    ///   overlapping another network's.
    @discardableResult
    public func defineNetwork(_ spec: NetworkSpec) throws -> NetworkSpec {
        try spec.validate()
        guard let bridge = spec.bridge else {
            throw BerthError(.internal, "A network reached the catalog without a bridge name.")
        }
        return try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM network WHERE name = ?", arguments: [spec.name]) == true {
                throw BerthError(
                    .alreadyExists, "Network name '\(spec.name)' is already in use.",
                    remedy: "Remove it with 'berth net-undefine \(spec.name)' or choose another name.")
            }
            if let owner = try String.fetchOne(
                db, sql: "SELECT name FROM network WHERE uuid = ?", arguments: [spec.uuid.uuidString])
            {
                throw BerthError(
                    .alreadyExists, "UUID \(spec.uuid) already belongs to network '\(owner)'.",
                    remedy: "Leave 'uuid' out to have one generated.")
            }
            if spec.ownsBridge,
                let owner = try String.fetchOne(
                    db, sql: "SELECT name FROM network WHERE bridge = ? AND mode != 'bridge'", arguments: [bridge])
            {
                throw BerthError(
                    .alreadyExists, "Bridge \(bridge) already belongs to network '\(owner)'.",
                    remedy: "Give another \"bridge\", or leave it out to have one chosen.")
            }
            if let subnet = spec.subnet {
                for other in try Self.networkRows(db) {
                    guard let theirs = other.spec.subnet, theirs.overlaps(subnet) else { continue }
                    throw BerthError(
                        .alreadyExists,
                        "Subnet \(subnet.cidr) of '\(spec.name)' overlaps \(theirs.cidr) of network '\(other.spec.name)'.",
                        remedy: "Choose a subnet no other network uses ('berth net-list --all' shows them).")
                }
            }
            if let subnet6 = spec.subnet6 {
                for other in try Self.networkRows(db) {
                    guard let theirs = other.spec.subnet6, theirs.overlaps(subnet6) else { continue }
                    throw BerthError(
                        .alreadyExists,
                        "IPv6 prefix \(subnet6.cidr) of '\(spec.name)' overlaps \(theirs.cidr) of network '\(other.spec.name)'.",
                        remedy: "Choose a prefix no other network uses ('berth net-list --all' shows them).")
                }
            }
            var stored = spec
            stored.hosts = []
            let now = CatalogDate.text(Date())
            try db.execute(
                sql: """
                    INSERT INTO network (name, uuid, mode, bridge, spec, autostart, createdAt, updatedAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    spec.name, spec.uuid.uuidString, spec.mode.rawValue, bridge, try Self.networkJSON(stored),
                    spec.autostart, now, now,
                ])
            let id = db.lastInsertedRowID
            for host in spec.hosts { try Self.insertReservation(host, networkID: id, network: spec, domainID: nil, db: db) }
            return try Self.networkRow(named: spec.name, db: db).spec
        }
    }

    /// Removes a network (and its reservations); the caller checks it is not running.
    public func undefineNetwork(_ name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM network WHERE name = ?", arguments: [name])
            if db.changesCount == 0 { throw BerthError.unknownNetwork(name) }
        }
    }

    public func network(named name: String) throws -> NetworkRecord {
        try database.read { db in try Self.networkRow(named: name, db: db) }
    }

    public func allNetworks() throws -> [NetworkRecord] {
        try database.read { db in try Self.networkRows(db) }
    }

    public func setNetworkActive(_ name: String, _ active: Bool) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE network SET active = ?, updatedAt = ? WHERE name = ?", arguments: [active, CatalogDate.text(Date()), name])
            if db.changesCount == 0 { throw BerthError.unknownNetwork(name) }
        }
    }

    public func setNetworkAutostart(_ name: String, _ autostart: Bool) throws {
        try database.write { db in
            var record = try Self.networkRow(named: name, db: db)
            record.spec.autostart = autostart
            record.spec.hosts = []
            try db.execute(
                sql: "UPDATE network SET spec = ?, autostart = ?, updatedAt = ? WHERE name = ?",
                arguments: [try Self.networkJSON(record.spec), autostart, CatalogDate.text(Date()), name])
        }
    }

    /// Adds a reservation to a network (`net-update … add dhcp-host`).
    /// - Throws: `.alreadyExists` when the MAC or the address is reserved already.
    public func addReservation(_ host: DHCPHost, network name: String) throws {
        try database.write { db in
            let record = try Self.networkRow(named: name, db: db)
            let id = try Self.networkID(name, db: db)
            try Self.insertReservation(host, networkID: id, network: record.spec, domainID: nil, db: db)
        }
    }

    /// Removes the reservation for `mac` (`net-update … delete dhcp-host`).
    public func removeReservation(mac: MACAddress, network name: String) throws {
        try database.write { db in
            let id = try Self.networkID(name, db: db)
            if let owner = try String.fetchOne(
                db,
                sql: "SELECT d.name FROM dhcp_host h JOIN domain d ON d.id = h.domainId WHERE h.networkId = ? AND h.mac = ?",
                arguments: [id, mac.description])
            {
                throw BerthError(
                    .wrongState, "The reservation for \(mac) on '\(name)' comes from domain '\(owner)'s NIC.",
                    remedy: "Remove \"ip\" from that NIC ('berth define --update') to free it.")
            }
            try db.execute(
                sql: "DELETE FROM dhcp_host WHERE networkId = ? AND mac = ?", arguments: [id, mac.description])
            if db.changesCount == 0 {
                throw BerthError(
                    .notFound, "Network '\(name)' has no reservation for \(mac).",
                    remedy: "'berth net-dumpxml \(name)' lists its reservations.")
            }
        }
    }

    /// A host-wide value berthd keeps (such as whether it defined `default` already).
    public func setting(_ key: String) throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = ?", arguments: [key]) }
    }

    public func setSetting(_ key: String, _ value: String) throws {
        try database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO setting (key, value) VALUES (?, ?)", arguments: [key, value])
        }
    }

    // MARK: - Domain NICs

    /// A domain NIC that names its address (`{"network": "default", "ip": "…"}`) reserves it
    /// on that network, in the same transaction as the domain's definition.
    func claimAddresses(_ spec: DomainSpec, domainID: Int64, db: SQLiteConnection) throws {
        for nic in spec.nics where nic.mode == .network || nic.mode == .route {
            guard let ip = nic.ip, let mac = nic.mac else { continue }
            // A Xen vif-route NIC with ip= and no network: the routed network holding that address.
            guard let name = try nic.network ?? Self.routedNetwork(containing: ip, db: db) else { continue }
            guard let record = try? Self.networkRow(named: name, db: db) else {
                throw BerthError(
                    .notFound, "Domain '\(spec.name)' reserves \(ip) on network '\(name)', which is not defined.",
                    remedy: "Define the network first ('berth net-define FILE'), or leave \"ip\" out.")
            }
            guard record.spec.mode != .bridge else {
                throw BerthError(
                    .invalidArgument, "Network '\(name)' is a host bridge; its addresses come from the LAN's DHCP server.",
                    remedy: "Reserve \(ip) for \(mac) on that server, and leave \"ip\" out of the NIC.")
            }
            let host = DHCPHost(mac: mac, ip: ip, name: spec.name.replacing("_", with: "-"))
            try Self.insertReservation(
                host, networkID: try Self.networkID(name, db: db), network: record.spec, domainID: domainID, db: db)
        }
    }

    /// The routed network whose subnet holds `ip` (where a Xen `vif-route` NIC belongs).
    public func routedNetwork(containing ip: String) throws -> String? {
        try database.read { db in try Self.routedNetwork(containing: ip, db: db) }
    }

    static func routedNetwork(containing ip: String, db: SQLiteConnection) throws -> String? {
        guard let address = IPv4Address(ip) else { return nil }
        return try networkRows(db).first { $0.spec.mode == .routed && $0.spec.subnet?.contains(address) == true }?.spec.name
    }

    // MARK: - Helpers

    private static func insertReservation(
        _ host: DHCPHost, networkID: Int64, network: NetworkSpec, domainID: Int64?, db: SQLiteConnection
    ) throws {
        guard let subnet = network.subnet else {
            throw BerthError(
                .invalidArgument, "Network '\(network.name)' has no subnet of its own to reserve addresses in.",
                remedy: "Make the reservation on the LAN's DHCP server.")
        }
        var host = host
        if let name = host.name, !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) || name.count > 63 {
            host.name = nil
        }
        try host.validate(in: subnet)
        let clash = try SQLiteRow.fetchOne(
            db,
            sql: """
                SELECT h.mac, h.ip, d.name AS domain FROM dhcp_host h LEFT JOIN domain d ON d.id = h.domainId
                WHERE h.networkId = ? AND (h.mac = ? OR h.ip = ?) AND (h.domainId IS NOT ? OR h.domainId IS NULL)
                """,
            arguments: [networkID, host.mac.description, host.ip, domainID])
        if let clash {
            let (mac, ip): (String, String) = (try clash["mac"], try clash["ip"])
            let owner = (try clash["domain"] as String?).map { "domain '\($0)'" } ?? "a reservation of the network"
            let (what, remedy) =
                ip == host.ip
                ? (
                    "\(host.ip) is already reserved on '\(network.name)' for \(mac) (\(owner))",
                    "Choose another address, or free it first ('berth net-update \(network.name) delete dhcp-host \(mac)')."
                )
                : (
                    "\(host.mac) already has a reservation on '\(network.name)' (\(ip), \(owner))",
                    "Delete that reservation first, or give this NIC another MAC."
                )
            throw BerthError(.alreadyExists, what + ".", remedy: remedy)
        }
        try db.execute(
            sql: "INSERT INTO dhcp_host (networkId, mac, ip, name, domainId) VALUES (?, ?, ?, ?, ?)",
            arguments: [networkID, host.mac.description, host.ip, host.name, domainID])
    }

    private static func networkID(_ name: String, db: SQLiteConnection) throws -> Int64 {
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM network WHERE name = ?", arguments: [name]) else {
            throw BerthError.unknownNetwork(name)
        }
        return id
    }

    private static func networkRow(named name: String, db: SQLiteConnection) throws -> NetworkRecord {
        guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT * FROM network WHERE name = ?", arguments: [name]) else {
            throw BerthError.unknownNetwork(name)
        }
        return try networkRecord(row, db: db)
    }

    private static func networkRows(_ db: SQLiteConnection) throws -> [NetworkRecord] {
        try SQLiteRow.fetchAll(db, sql: "SELECT * FROM network ORDER BY name").map { try networkRecord($0, db: db) }
    }

    private static func networkRecord(_ row: SQLiteRow, db: SQLiteConnection) throws -> NetworkRecord {
        var spec = try JSONDecoder().decode(NetworkSpec.self, from: Data((row["spec"] as String).utf8))
        spec.autostart = try row["autostart"]
        spec.hosts = try SQLiteRow.fetchAll(
            db,
            sql: """
                SELECT h.mac, h.ip, h.name, d.name AS domain FROM dhcp_host h LEFT JOIN domain d ON d.id = h.domainId
                WHERE h.networkId = ? ORDER BY h.ip
                """,
            arguments: [try row["id"] as Int64]
        ).compactMap { host in
            guard let mac = MACAddress(try host["mac"]) else { return nil }
            return try DHCPHost(mac: mac, ip: host["ip"], name: host["name"], domain: host["domain"])
        }
        return try NetworkRecord(spec: spec, active: row["active"])
    }

    private static func networkJSON(_ spec: NetworkSpec) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(spec), as: UTF8.self)
    }
}
