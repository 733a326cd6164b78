// modules: BerthModel BerthFormats
// corpus: Tests/BerthFormatsTests/Fixtures/xen-configs/*
//
// xl/xm domain configs: the reader must never crash or hang, and what the writer emits
// must read back to the same domain.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let config = try? XLConfig.parse(bytes: bytes, source: "fuzz") else { return 0 }
    // Printed settings parse again to the same values (booleans print as 1/0).
    guard let again = try? XLConfig.parse(config.text) else { fatalError("printed xl settings do not parse:\n\(config.text)") }
    if again.settings.count != config.settings.count { fatalError("printed xl settings changed in number:\n\(config.text)") }
    guard let result = try? XLDomain.domain(from: config, source: "fuzz") else { return 0 }
    let written = XLDomain.write(result.spec)
    guard let back = try? XLDomain.read(written, source: "written") else { fatalError("written xl does not read back:\n\(written)") }
    if back.spec != result.spec { fatalError("xl round trip changed the domain:\n\(written)") }
    return 0
}
