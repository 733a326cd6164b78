import BerthModel
import FoundationEssentials

extension UUID {
    /// Parses the catalog's UUID column (`uuidString`'s 36 characters, either case) without
    /// `UUID(uuidString:)`, which goes through `sscanf`; nil for anything else, so callers can
    /// fall back to that parser.
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
                    guard let high = Text.hexValue(bytes[index]), let low = Text.hexValue(bytes[index + 1]) else {
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
}

/// The catalog's DATETIME columns, as GRDB wrote them: "yyyy-MM-dd HH:mm:ss.SSS", UTC. Written
/// and read here with integer arithmetic: no `DateFormatter` or `Calendar`, which load ICU's data.
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

    /// A column's date: the text layouts GRDB read (below), or a number of seconds since 1970;
    /// nil for NULL and anything else.
    static func date(_ value: SQLiteValue) -> Date? {
        switch value {
        case .integer(let seconds): Date(timeIntervalSince1970: Double(seconds))
        case .real(let seconds): Date(timeIntervalSince1970: seconds)
        case .text(let text): date(text: text)
        case .null, .blob: nil
        }
    }

    /// "YYYY-MM-DD", optionally followed by " " or "T" and "HH:MM", ":SS", ".S" (one or more
    /// digits; milliseconds kept), then optionally "Z", "+HH:MM" or "-HH:MM" (UTC when none).
    static func date(text: String) -> Date? {
        var scanner = DateScanner(bytes: Array(text.utf8))
        guard let year = scanner.number(4), scanner.skip("-"), let month = scanner.number(2), scanner.skip("-"),
            let day = scanner.number(2), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var millis = days(year: year, month: month, day: day) * 86_400_000
        if scanner.atEnd { return Date(timeIntervalSince1970: Double(millis) / 1000) }
        guard scanner.skip(" ") || scanner.skip("T"), let time = scanner.time(), let zone = scanner.zone(), scanner.atEnd
        else { return nil }
        millis += time - zone
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// Reads `CatalogDate.date(_:)`'s layouts a field at a time.
    private struct DateScanner {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index == bytes.count }

        mutating func skip(_ character: Unicode.Scalar) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }

        /// Exactly `width` decimal digits.
        mutating func number(_ width: Int) -> Int64? {
            guard bytes.count - index >= width else { return nil }
            var value: Int64 = 0
            for byte in bytes[index..<index + width] {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int64(byte - 48)
            }
            index += width
            return value
        }

        /// "HH:MM[:SS[.fraction]]" in milliseconds.
        mutating func time() -> Int64? {
            guard let hour = number(2), skip(":"), let minute = number(2), hour < 24, minute < 60 else { return nil }
            var millis = (hour * 60 + minute) * 60_000
            guard skip(":") else { return millis }
            guard let second = number(2), second < 60 else { return nil }
            millis += second * 1000
            guard skip(".") else { return millis }
            var scale: Int64 = 100
            var digits = 0
            while let digit = number(1) {
                millis += digit * scale
                scale /= 10
                digits += 1
            }
            return digits > 0 ? millis : nil
        }

        /// The offset from UTC in milliseconds: 0 for "Z" or nothing.
        mutating func zone() -> Int64? {
            if atEnd || skip("Z") { return 0 }
            let sign: Int64 = skip("+") ? 1 : skip("-") ? -1 : 0
            guard sign != 0, let hour = number(2), skip(":"), let minute = number(2) else { return nil }
            return sign * (hour * 60 + minute) * 60_000
        }
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
