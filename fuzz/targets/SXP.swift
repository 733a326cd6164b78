// modules: BerthModel BerthFormats
// corpus: Tests/BerthFormatsTests/Fixtures/xen-configs/xend-config.sxp
//
// xend-config.sxp: S-expressions must parse without crashing, print back to the same
// values, and the xend settings reader must reject bad values with an error, not a trap.

func sxpValues(_ expression: SExpression) -> String {
    switch expression.value {
    case .atom(let text): "a:" + text
    case .string(let text): "s:" + text
    case .list(let items): "(" + items.map(sxpValues).joined(separator: " ") + ")"
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let expressions = try? SXP.parse(bytes: bytes, source: "fuzz") else { return 0 }
    let printed = expressions.map(SXP.print).joined(separator: "\n")
    guard let again = try? SXP.parse(printed) else { fatalError("printed S-expressions do not parse:\n\(printed)") }
    if again.map(sxpValues) != expressions.map(sxpValues) {
        fatalError("S-expression print/parse changed values:\n\(printed)")
    }
    _ = try? XendConfig.parse(bytes: bytes, source: "fuzz")
    return 0
}
