import BerthDisk

/// Boot Loader Specification entries (`/boot/loader/entries/*.conf`), ordered as GRUB's
/// `blscfg` orders them: newest `version` first (RPM version comparison), then file name.
public enum BLS {
    /// One parsed entry file.
    public static func parseEntry(_ bytes: [UInt8], fileName: String, expand: (String) -> String = { $0 }) -> BootEntry {
        var title: String?
        var version: String?
        var kernel: String?
        var initrds: [String] = []
        var options: [String] = []
        for raw in menuLines(bytes) {
            let line = raw.trimmedSpaces
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            let key = line.prefix(while: { $0 != " " && $0 != "\t" })
            let value = String(line.dropFirst(key.count).trimmedSpaces)
            switch key {
            case "title": title = value
            case "version": version = value
            case "linux": kernel = value
            case "initrd": initrds += words(value)
            case "options": options.append(value)
            default: break
            }
        }
        let id = fileName.hasSuffix(".conf") ? String(fileName.dropLast(5)) : fileName
        return BootEntry(
            title: title ?? version ?? id, id: id, kernel: kernel.map { BootPath.stripDevice($0).path },
            initrds: initrds.map { BootPath.stripDevice($0).path },
            args: words(expand(options.joined(separator: " "))).joined(separator: " "))
    }

    /// Entries found in the first of `directories` that holds any, sorted as `blscfg` does.
    /// - Parameter expand: expands `$kernelopts` and other GRUB variables in `options`.
    public static func entries(fs: (any FileSystem)?, directories: [String], expand: (String) -> String = { $0 }) -> [BootEntry] {
        guard let fs else { return [] }
        for directory in directories {
            guard let names = try? fs.list(directory) else { continue }
            var found: [(name: String, version: String?, entry: BootEntry)] = []
            for name in names.filter({ $0.hasSuffix(".conf") }).prefix(BootLimits.maxBLSEntries) {
                guard let bytes = try? fs.read(directory + "/" + name, limit: BootLimits.maxMenuBytes) else { continue }
                let entry = parseEntry(bytes, fileName: name, expand: expand)
                let version = menuLines(bytes).lazy.map { $0.trimmedSpaces }.first { $0.hasPrefix("version") }
                    .map { String($0.dropFirst(7).trimmedSpaces) }
                found.append((name, version, entry))
            }
            if found.isEmpty { continue }
            found.sort { a, b in
                switch (a.version, b.version) {
                case (nil, .some): return true
                case (.some, nil): return false
                case (.some(let va), .some(let vb)):
                    let c = rpmVersionCompare(va, vb)
                    if c != 0 { return c > 0 }
                default: break
                }
                return a.name > b.name
            }
            return found.map(\.entry)
        }
        return []
    }

    /// RPM's `rpmvercmp`: alternating numeric and alphabetic segments, `~` sorts before
    /// anything, `^` after the base version. Returns -1, 0 or 1.
    public static func rpmVersionCompare(_ a: String, _ b: String) -> Int {
        if a == b { return 0 }
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        var i = 0
        var j = 0
        func isAlnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) }
        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        while i < x.count || j < y.count {
            while i < x.count, !isAlnum(x[i]), x[i] != 0x7E, x[i] != 0x5E { i += 1 }
            while j < y.count, !isAlnum(y[j]), y[j] != 0x7E, y[j] != 0x5E { j += 1 }
            let xt = i < x.count && x[i] == 0x7E
            let yt = j < y.count && y[j] == 0x7E
            if xt || yt {
                if !xt { return 1 }
                if !yt { return -1 }
                i += 1
                j += 1
                continue
            }
            let xc = i < x.count && x[i] == 0x5E
            let yc = j < y.count && y[j] == 0x5E
            if xc || yc {
                if i >= x.count { return -1 }
                if j >= y.count { return 1 }
                if !xc { return 1 }
                if !yc { return -1 }
                i += 1
                j += 1
                continue
            }
            if i >= x.count || j >= y.count { break }
            let numeric = isDigit(x[i])
            var ie = i
            var je = j
            if numeric {
                while ie < x.count, isDigit(x[ie]) { ie += 1 }
                while je < y.count, isDigit(y[je]) { je += 1 }
            } else {
                while ie < x.count, isAlnum(x[ie]), !isDigit(x[ie]) { ie += 1 }
                while je < y.count, isAlnum(y[je]), !isDigit(y[je]) { je += 1 }
            }
            if je == j { return numeric ? 1 : -1 }
            var xs = Array(x[i..<ie])
            var ys = Array(y[j..<je])
            if numeric {
                while xs.first == 0x30 { xs.removeFirst() }
                while ys.first == 0x30 { ys.removeFirst() }
                if xs.count != ys.count { return xs.count > ys.count ? 1 : -1 }
            }
            if xs != ys { return xs.lexicographicallyPrecedes(ys) ? -1 : 1 }
            i = ie
            j = je
        }
        let xr = i < x.count
        let yr = j < y.count
        if !xr && !yr { return 0 }
        return xr ? 1 : -1
    }
}
