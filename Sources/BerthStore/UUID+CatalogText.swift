import Foundation
import GRDB

extension UUID {
    /// Parses the catalog's UUID column (`uuidString`'s 36 characters, either case) without
    /// Foundation's `UUID(uuidString:)`, which goes through `sscanf`; nil for anything else,
    /// so callers can fall back to Foundation's parser.
    init?(catalogText text: String) {
        var text = text
        let parsed: uuid_t? = text.withUTF8 { bytes in
            guard bytes.count == 36 else { return nil }
            var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var index = 0
            let ok = withUnsafeMutableBytes(of: &value) { out -> Bool in
                for octet in 0..<16 {
                    if index == 8 || index == 13 || index == 18 || index == 23 {
                        guard bytes[index] == UInt8(ascii: "-") else { return false }
                        index += 1
                    }
                    guard let high = Self.nibble(bytes[index]), let low = Self.nibble(bytes[index + 1]) else {
                        return false
                    }
                    out[octet] = high << 4 | low
                    index += 2
                }
                return true
            }
            return ok ? value : nil
        }
        guard let parsed else { return nil }
        self.init(uuid: parsed)
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// The catalog's DATETIME columns, in GRDB's own text ("yyyy-MM-dd HH:mm:ss.SSS", UTC) but
/// without GRDB's `Date` conversions: those go through a `DateFormatter` and a `Calendar` with
/// the en_US_POSIX locale, which load ICU's data into berthd at its first catalog write (6 MiB
/// of resident ICU and FoundationInternationalization). Text this parser does not know is
/// handed to GRDB's.
enum CatalogDate {
    static func text(_ date: Date) -> String {
        // To the nearest millisecond, as GRDB's formatter writes it.
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let (days, inDay) = floorDivision(millis, 86_400_000)
        let (year, month, day) = civil(days: days)
        func pad(_ value: Int64, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2)) \(pad(inDay / 3_600_000, 2)):"
            + "\(pad(inDay / 60000 % 60, 2)):\(pad(inDay / 1000 % 60, 2)).\(pad(inDay % 1000, 3))"
    }

    static func text(_ date: Date?) -> String? { date.map { text($0) } }

    static func date(_ value: DatabaseValue) -> Date? {
        guard let text = String.fromDatabaseValue(value) else { return Date.fromDatabaseValue(value) }
        let bytes = Array(text.utf8)
        guard bytes.count == 19 || bytes.count == 23 else { return Date.fromDatabaseValue(value) }
        let layout: [(Int, Int, UInt8?)] = [(0, 4, 45), (5, 2, 45), (8, 2, 32), (11, 2, 58), (14, 2, 58), (17, 2, 46), (20, 3, nil)]
        var fields: [Int64] = []
        for (start, width, separator) in layout where start < bytes.count {
            var number: Int64 = 0
            for byte in bytes[start..<start + width] {
                guard byte >= 48, byte <= 57 else { return Date.fromDatabaseValue(value) }
                number = number * 10 + Int64(byte - 48)
            }
            if let separator, start + width < bytes.count, bytes[start + width] != separator {
                return Date.fromDatabaseValue(value)
            }
            fields.append(number)
        }
        guard (1...12).contains(fields[1]), (1...31).contains(fields[2]), fields[3] < 24, fields[4] < 60, fields[5] < 60
        else { return Date.fromDatabaseValue(value) }
        let seconds = days(year: fields[0], month: fields[1], day: fields[2]) * 86400 + fields[3] * 3600 + fields[4] * 60 + fields[5]
        return Date(timeIntervalSince1970: Double(seconds) + Double(fields.count > 6 ? fields[6] : 0) / 1000)
    }

    private static func floorDivision(_ value: Int64, _ divisor: Int64) -> (Int64, Int64) {
        let quotient = value / divisor - (value % divisor < 0 ? 1 : 0)
        return (quotient, value - quotient * divisor)
    }

    /// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
    private static func civil(days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = floorDivision(z, 146_097).0
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// (year, month, day) → days since 1970-01-01, the inverse of `civil`.
    private static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDivision(y, 400).0
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
