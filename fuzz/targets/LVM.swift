// modules: BerthDisk
// corpus: fixtures/out/disk/corpus/lvm/*
//
// Fuzzes the LVM2 label, PV header, metadata area header, the metadata text parser and the
// mapping of logical volumes (linear and striped) onto the PV. The corpus holds the head
// of a real PV and a real vgcfgbackup text.
//   swiftc -sanitize=fuzzer,address -parse-as-library -O Sources/BerthDisk/*.swift \
//       fuzz/targets/LVM.swift -o /tmp/fuzz-lvm
//   /tmp/fuzz-lvm -max_len=65536 -max_total_time=60 /tmp/corpus-lvm fixtures/out/disk/corpus/lvm

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? LVM.parseConfig(bytes)
    let source = MemorySource(bytes)
    guard LVM.hasLabel(source), let vg = try? LVM.VolumeGroup(source: source) else { return 0 }
    for lv in vg.logicalVolumes {
        guard let s = try? lv.source(), s.size > 0 else { continue }
        _ = try? s.read(at: 0, count: Int(min(s.size, 4096)))
        _ = try? s.read(at: s.size / 2, count: Int(min(s.size / 2, 70_000)))
        _ = try? s.read(at: s.size - 1, count: 1)
    }
    return 0
}
