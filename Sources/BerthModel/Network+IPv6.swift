/// An IPv6 address as a 128-bit number (two halves), parsed and printed as RFC 5952 says.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the colon-hex forms (`fd00:50::1`, `2001:db8:0:0:0:0:0:1`): groups of one to four
    /// hex digits, at most one `::`. Zone indexes and embedded IPv4 are not accepted.
    public init?(_ text: String) {
        guard (2...39).contains(text.utf8.count), text.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        self.init(groups: all)
    }

    init(groups: [UInt16]) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (index, group) in groups.prefix(8).enumerated() {
            if index < 4 { high = high << 16 | UInt64(group) } else { low = low << 16 | UInt64(group) }
        }
        self.init(high: high, low: low)
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { index in
            let half = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> UInt64(48 - 16 * (index % 4)))
        }
    }

    /// RFC 5952: lowercase, no leading zeros, the longest run of two or more zero groups as `::`.
    public var description: String {
        let groups = groups
        var best = (start: -1, length: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8, groups[end] == 0 { end += 1 }
            if end - index > best.length, end - index >= 2 { best = (index, end - index) }
            index = end
        }
        let hex = groups.map { String($0, radix: 16) }
        guard best.start >= 0 else { return hex.joined(separator: ":") }
        let head = hex[0..<best.start].joined(separator: ":")
        let tail = hex[(best.start + best.length)...].joined(separator: ":")
        return head + "::" + tail
    }

    /// The address with only the first `prefix` bits kept.
    public func masked(_ prefix: Int) -> IPv6Address {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : UInt64.max << UInt64(64 - bits) }
        return IPv6Address(high: high & mask(prefix), low: low & mask(prefix - 64))
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool { (lhs.high, lhs.low) < (rhs.high, rhs.low) }
}

/// A host address with its prefix: `fd00:50::1/64`.
public struct IPv6Subnet: Hashable, Sendable, CustomStringConvertible {
    public let host: IPv6Address
    public let prefix: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let host = IPv6Address(String(parts[0])), (1...3).contains(parts[1].count),
            parts[1].allSatisfy(\.isNumber), let prefix = Int(parts[1]), (0...128).contains(prefix)
        else { return nil }
        self.init(host: host, prefix: prefix)
    }

    public init(host: IPv6Address, prefix: Int) {
        self.host = host
        self.prefix = min(max(prefix, 0), 128)
    }

    public var network: IPv6Address { host.masked(prefix) }
    /// `fd00:50::/64`.
    public var cidr: String { "\(network)/\(prefix)" }
    /// `fd00:50::1/64`.
    public var description: String { "\(host)/\(prefix)" }

    public func contains(_ address: IPv6Address) -> Bool { address.masked(prefix) == network }
    public func overlaps(_ other: IPv6Subnet) -> Bool {
        let shorter = min(prefix, other.prefix)
        return host.masked(shorter) == other.host.masked(shorter)
    }
}
