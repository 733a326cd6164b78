// modules: BerthDisk
// support: FilesystemWalk
// corpus: fixtures/out/disk/fuzz-seeds/xfs
//
// libFuzzer target for the XFS reader. Built together with the module's sources as one module:
//   fuzz/run.sh XFS 60. By hand, add fuzz/support/FilesystemWalk.swift: swiftc ... fuzz/targets/XFS.swift -o /tmp/fuzz-xfs
// Input: a sparse image, see fuzz/support/FilesystemWalk.swift.

extension XFSFileSystem: FuzzWalkable {}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    fuzzWalk(UnsafeBufferPointer(start: data, count: size)) { try XFSFileSystem(source: $0) }
    return 0
}
