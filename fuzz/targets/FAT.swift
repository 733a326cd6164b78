// modules: BerthDisk
// support: FilesystemWalk
// corpus: fixtures/out/disk/fuzz-seeds/fat
//
// libFuzzer target for the FAT reader. Built together with the module's sources as one module:
//   fuzz/run.sh FAT 60. By hand, add fuzz/support/FilesystemWalk.swift: swiftc ... fuzz/targets/FAT.swift -o /tmp/fuzz-fat
// Input: a sparse image, see fuzz/support/FilesystemWalk.swift.

extension FATFileSystem: FuzzWalkable {}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzWalk(UnsafeBufferPointer(start: data, count: size)) { try FATFileSystem(source: $0) }
    return 0
}
