import BerthModel
import FoundationEssentials

extension Catalog {
    /// The first of the 65,536 user and group IDs this daemon's guests run as, chosen at random
    /// once (between 1,000,000,000 and 2,000,000,000, where no distribution allocates users)
    /// and kept, so two daemons on one host, or a test's daemon, never share guest IDs.
    public func guestIDBlock() throws -> UInt32 {
        try database.write { db in
            if let stored = try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = 'guestIDBlock'"),
                let block = UInt32(stored)
            {
                return block
            }
            let block = UInt32.random(in: 15_259...30_517) * 65_536
            try db.execute(
                sql: "INSERT OR REPLACE INTO setting (key, value) VALUES ('guestIDBlock', ?)", arguments: [String(block)])
            return block
        }
    }

    /// The domain's row id: stable for its whole life and never reused (AUTOINCREMENT), so it
    /// numbers the domain's guest IDs.
    public func domainID(named name: String) throws -> Int64 {
        try database.read { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownDomain(name)
            }
            return id
        }
    }
}
