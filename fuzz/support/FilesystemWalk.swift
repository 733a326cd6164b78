// Shared by the filesystem fuzz targets (XFS, FAT, ISO9660); fuzz/run.sh copies the files a
// target names in its `// support:` header into the same single-module build.
//
// Input: a sparse image (u64 LE image size, then records of u32 LE sector number + 512 bytes;
// sectors not given read as zeros), the format fixtures/disk/build-fs-images.sh writes seeds in,
// so mutations land in metadata instead of in megabytes of zeros.

/// What the walk needs beyond `FileSystem`: the readers' symlink-level calls.
protocol FuzzWalkable: FileSystem {
    func lstat(_ path: String) throws -> FileInfo
    func readLink(_ path: String) throws -> String
}

struct FuzzSparseSource: ByteSource {
    let size: UInt64
    let sectors: [UInt32: [UInt8]]

    init(_ data: UnsafeBufferPointer<UInt8>) {
        var size: UInt64 = 0
        for i in 0..<min(8, data.count) { size |= UInt64(data[i]) << (8 * UInt64(i)) }
        self.size = size & ((1 << 40) - 1)  // up to 1 TiB: enough to reach any sector number
        var sectors: [UInt32: [UInt8]] = [:]
        var at = 8
        while at + 4 + 512 <= data.count {
            var sector: UInt32 = 0
            for i in 0..<4 { sector |= UInt32(data[at + i]) << (8 * UInt32(i)) }
            sectors[sector] = Array(data[(at + 4)..<(at + 516)])
            at += 516
        }
        self.sectors = sectors
    }

    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        try checkRange(offset, count)
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let first = offset / 512
        let last = (offset + UInt64(count) - 1) / 512
        // Only the sectors the input defines need copying; iterate whichever set is smaller.
        if last - first < UInt64(sectors.count) {
            for s in first...last { copy(s, offset, &out) }
        } else {
            for s in sectors.keys where UInt64(s) >= first && UInt64(s) <= last { copy(UInt64(s), offset, &out) }
        }
        return out
    }

    private func copy(_ sector: UInt64, _ offset: UInt64, _ out: inout [UInt8]) {
        guard sector <= UInt64(UInt32.max), let bytes = sectors[UInt32(sector)] else { return }
        let start = sector * 512
        let lo = max(start, offset)
        let hi = min(start + 512, offset + UInt64(out.count))
        guard lo < hi else { return }
        out.replaceSubrange(Int(lo - offset)..<Int(hi - offset), with: bytes[Int(lo - start)..<Int(hi - start)])
    }
}

/// Opens the input as a filesystem and walks it: lists, stats, reads and follows links,
/// within a bounded number of operations.
func fuzzWalk(
    _ data: UnsafeBufferPointer<UInt8>, open: (any ByteSource) throws -> any FuzzWalkable,
    onFile: (any FuzzWalkable, String) -> Void = { _, _ in }
) {
    let source = FuzzSparseSource(data)
    guard let fs = try? open(source) else { return }
    var queue = ["/"]
    var operations = 0
    while !queue.isEmpty, operations < 200 {
        let dir = queue.removeFirst()
        operations += 1
        guard let names = try? fs.list(dir) else { continue }
        for name in names.prefix(16) {
            let path = (dir == "/" ? "" : dir) + "/" + name
            operations += 1
            guard let info = try? fs.stat(path) else { continue }
            if info.kind == .directory, queue.count < 32 { queue.append(path) }
            if info.kind == .file {
                _ = try? fs.read(path, limit: 1 << 20)
                onFile(fs, path)
            }
            _ = try? fs.lstat(path)
            _ = try? fs.readLink(path)
        }
    }
    _ = try? fs.read("/boot/grub/grub.cfg", limit: 1 << 16)
    _ = try? fs.stat("/link")
    _ = try? fs.stat("/loop")
}
