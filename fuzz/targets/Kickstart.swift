// modules: BerthModel BerthFormats
// corpus: Tests/BerthFormatsTests/Fixtures/kickstart/*
//
// Kickstart files: parse, validate, size the layout and print without crashing; printing
// parses back to an equal kickstart.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let kickstart = try? Kickstart.parse(bytes: bytes, source: "fuzz") else { return 0 }
    _ = kickstart.validate()
    _ = kickstart.diskRequirement
    _ = kickstart.installURL
    let printed = kickstart.text
    guard let again = try? Kickstart.parse(printed) else { fatalError("printed kickstart does not parse:\n\(printed)") }
    if again != kickstart { fatalError("kickstart print/parse changed it:\n\(printed)") }
    return 0
}
