// modules: BerthDisk
// support: FilesystemWalk
// corpus: fixtures/out/disk/fuzz-seeds/iso9660
//
// libFuzzer target for the ISO9660 reader. Built together with the module's sources as one module:
//   fuzz/run.sh ISO9660 60. By hand, add fuzz/support/FilesystemWalk.swift: swiftc ... fuzz/targets/ISO9660.swift -o /tmp/fuzz-iso9660
// Input: a sparse image, see fuzz/support/FilesystemWalk.swift.

extension ISO9660FileSystem: FuzzWalkable {}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzWalk(UnsafeBufferPointer(start: data, count: size), open: { try ISO9660FileSystem(source: $0) }) { fs, path in
        // The media server's ranged reads.
        _ = try? (fs as? ISO9660FileSystem)?.open(path).read(at: 1000, count: 5000)
    }
    return 0
}
