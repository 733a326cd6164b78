// modules: BerthModel BerthFormats BerthXML
// corpus: Tests/BerthFormatsTests/Fixtures/libvirt/*.xml
//
// libvirt domain XML through Foundation's XMLParser: never a crash, and writing what was
// read reaches a fixed point (write(read(write(x))) == write(x)).

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let result = try? LibvirtXML.read(bytes: bytes, source: "fuzz") else { return 0 }
    let written = LibvirtXML.write(result.spec)
    guard let back = try? LibvirtXML.read(written, source: "written") else { fatalError("written XML does not read back:\n\(written)") }
    if LibvirtXML.write(back.spec) != written { fatalError("XML write/read is not a fixed point:\n\(written)") }
    _ = XLDomain.write(back.spec)
    return 0
}
