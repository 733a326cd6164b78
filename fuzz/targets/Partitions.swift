// modules: BerthDisk
// corpus: fixtures/out/disk/corpus/partitions/*.img
//
// Fuzzes MBR (with the extended chain), GPT (primary and backup) and volume discovery,
// which goes on into LVM and ext for whatever the table points at.
//   swiftc -sanitize=fuzzer,address -parse-as-library -O Sources/BerthDisk/*.swift \
//       fuzz/targets/Partitions.swift -o /tmp/fuzz-partitions
//   /tmp/fuzz-partitions -max_len=262144 -max_total_time=60 /tmp/corpus-partitions fixtures/out/disk/corpus/partitions

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let disk = MemorySource(Array(UnsafeBufferPointer(start: data, count: size)))
    if let table = try? PartitionTable.read(from: disk) {
        for p in table.partitions {
            guard let s = try? p.source(in: disk), s.size > 0 else { continue }
            _ = try? s.read(at: 0, count: Int(min(s.size, 512)))
            _ = try? s.read(at: s.size - 1, count: 1)
        }
        _ = table.problems.map(\.description)
    }
    if let found = try? Volumes.discover(disk) {
        for v in found.volumes { _ = try? v.filesystem?.list("/") }
    }
    return 0
}
