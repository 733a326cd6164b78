// modules: BerthDisk
// corpus: fixtures/out/disk/corpus/ext4/*.img
//
// Fuzzes the ext2/3/4 reader: superblock, group descriptors, inodes, block maps, extent
// trees, directories, inline data and symlinks. Built together with Sources/BerthDisk:
//   swiftc -sanitize=fuzzer,address -parse-as-library -O Sources/BerthDisk/*.swift \
//       fuzz/targets/Ext4.swift -o /tmp/fuzz-ext4
//   /tmp/fuzz-ext4 -max_len=131072 -max_total_time=60 /tmp/corpus-ext4 fixtures/out/disk/corpus/ext4

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let source = MemorySource(Array(UnsafeBufferPointer(start: data, count: size)))
    guard let fs = try? Ext4FileSystem(source: source) else { return 0 }
    var budget = 64
    fuzzExt4Walk(fs, "/", depth: 0, budget: &budget)
    _ = try? fs.read("/link", limit: 1 << 20)
    _ = try? fs.readLink("/link")
    return 0
}

func fuzzExt4Walk(_ fs: Ext4FileSystem, _ path: String, depth: Int, budget: inout Int) {
    guard depth < 8, let names = try? fs.list(path) else { return }
    for name in names.prefix(16) {
        budget -= 1
        guard budget > 0 else { return }
        let child = path == "/" ? "/" + name : path + "/" + name
        guard let info = try? fs.stat(child) else { continue }
        switch info.kind {
        case .directory: fuzzExt4Walk(fs, child, depth: depth + 1, budget: &budget)
        case .file: _ = try? fs.read(child, limit: 1 << 20)
        default: break
        }
    }
}
