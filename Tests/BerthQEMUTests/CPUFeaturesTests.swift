import BerthModel
import Foundation
import Testing

@testable import BerthQEMU

/// The migration pre-check's CPU comparison: the pure parts, and the probe against the real
/// QEMU (a `-M none` process, no guest).
@Suite struct CPUFeaturesTests {
    @Test func aCPUModelBecomesTheExpansionsModelArgument() {
        #expect(
            CPUFeatures.modelArgument("max,erms=off")
                == .object(["name": .string("max"), "props": .object(["erms": .bool(false)])]))
        #expect(
            CPUFeatures.modelArgument("Skylake-Client,vmx=on,model-id=x")
                == .object([
                    "name": .string("Skylake-Client"),
                    "props": .object(["vmx": .bool(true), "model-id": .string("x")]),
                ]))
        #expect(CPUFeatures.modelArgument("max") == .object(["name": .string("max")]))
    }

    @Test func theEnabledFeaturesAreTheTrueFlags() {
        let answer = QMP.Value.object([
            "model": .object([
                "name": .string("base"),
                "props": .object(["sse2": .bool(true), "avx": .bool(true), "erms": .bool(false), "family": .int(6)]),
            ])
        ])
        #expect(CPUFeatures.enabled(in: answer) == ["avx", "sse2"])
        #expect(CPUFeatures.enabled(in: .object([:])).isEmpty)
    }

    @Test func missingFeaturesAreThoseTheHostLacks() {
        #expect(CPUFeatures.missing(["sse2", "avx", "avx2"], host: ["sse2", "avx2", "sse4.1"]) == ["avx"])
        #expect(CPUFeatures.missing(["sse2"], host: ["sse2", "avx"]).isEmpty)
        #expect(CPUFeatures.missing([], host: []).isEmpty)
    }

    @Test func theRefusalNamesTheFeaturesUpToACap() {
        let few = CPUFeatures.refusal(missing: ["avx", "avx2"], accel: .tcg)
        #expect(few.code == .wrongState)
        #expect(few.message.contains("avx, avx2"), "\(few.message)")
        #expect(few.message.contains("tcg"))
        #expect(few.remedy?.contains("keeps running on the source") == true)
        let many = CPUFeatures.refusal(missing: (1...30).map { "f\($0)" }, accel: .kvm, shown: 12)
        #expect(many.message.contains("f12") && !many.message.contains("f13"), "\(many.message)")
        #expect(many.message.contains("and 18 more"), "\(many.message)")
        #expect(many.message.contains("30 CPU features"))
    }

    @Test func theProbeAsksThisHostsQEMU() async throws {
        let binary = try QEMUBinary.locate()
        let features = try await CPUFeatures.probe(binary: binary, accel: .tcg)
        #expect(features.isSuperset(of: ["sse2", "cx8", "lm"]), "\(features.sorted())")
        // The probe asks for the model's bare name: what the host can give, erms included.
        #expect(features.contains("erms"), "\(features.sorted())")
        #expect(!features.contains("berth-no-such-feature"))
    }

    @Test func aQEMUWithoutAFeatureSaysSo() async throws {
        // A host whose QEMU's CPU lacks AVX, made with QEMU's own -global property.
        let wrapper = NSTemporaryDirectory() + "berth-qemu-noavx-\(UUID().uuidString.prefix(8))"
        let real = try QEMUBinary.locate()
        try "#!/bin/sh\nexec \(real) -global max-x86_64-cpu.avx=off \"$@\"\n".write(
            toFile: wrapper, atomically: true, encoding: .utf8)
        defer { unlink(wrapper) }
        chmod(wrapper, 0o755)
        let host = try await CPUFeatures.probe(binary: wrapper, accel: .tcg)
        let full = try await CPUFeatures.probe(binary: real, accel: .tcg)
        #expect(full.contains("avx"))
        #expect(!host.contains("avx"))
        #expect(CPUFeatures.missing(full.sorted(), host: host) == ["avx"])
    }
}
