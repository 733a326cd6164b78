// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Every Berth module, with the Berth modules and external products it needs.
// `BERTH_ONLY=BerthDisk,BerthBoot swift test` builds just those modules, what they
// depend on, and their tests: on a 2-core machine a leaf module's edit-test loop
// then skips Hummingbird and SwiftNIO entirely. Unset, everything builds.
let modules: [(name: String, uses: [String], products: [Target.Dependency])] = [
    ("BerthPOSIX", [], []),
    ("BerthModel", [], []),
    ("BerthFormats", ["BerthModel"], []),
    // libvirt XML (FoundationXML, libxml2, ICU) for the CLI only: berthd reads JSON.
    ("BerthXML", ["BerthModel", "BerthFormats"], []),
    ("BerthDisk", [], []),
    ("BerthBoot", ["BerthDisk", "BerthPOSIX"], []),
    ("BerthQEMU", ["BerthModel", "BerthPOSIX"], []),
    ("BerthHost", ["BerthModel", "BerthDisk", "BerthFormats", "BerthPOSIX"], []),
    // The catalog: SQLite's C API (the system libsqlite3, `CSQLite` below) without GRDB, whose
    // full Foundation (ICU included) berthd would otherwise load.
    ("BerthStore", ["BerthModel"], [.target(name: "CSQLite")]),
    (
        "BerthClient", ["BerthModel", "BerthQEMU", "BerthPOSIX"],
        [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOWebSocket", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
        ]
    ),
    (
        "BerthServer",
        ["BerthModel", "BerthFormats", "BerthDisk", "BerthBoot", "BerthQEMU", "BerthHost", "BerthStore", "BerthPOSIX", "BerthClient"],
        [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]
    ),
    (
        "BerthCLI",
        ["BerthModel", "BerthFormats", "BerthXML", "BerthDisk", "BerthBoot", "BerthQEMU", "BerthHost", "BerthClient", "BerthPOSIX"],
        [
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]
    ),
]
// `berth-bootloader` is PyGRUB's stand-in: it links only the disk readers so that a
// whole run (process start to exit) stays a few milliseconds.
let executables: [(name: String, uses: String)] = [
    ("berth", "BerthCLI"), ("berthd", "BerthServer"), ("berth-bootloader", "BerthBoot"),
]

// The web console's own files (plain HTML/CSS/JS, no build step), served by berthd. They are
// compiled into berthd (`PackageResources`): a resource bundle's accessor would link full
// Foundation into the daemon (see docs/ARCHITECTURE.md, berthd's memory).
let webUIFiles = (try? FileManager.default.contentsOfDirectory(atPath: Context.packageDirectory + "/Sources/BerthServer/UI")) ?? []
let resources: [String: [Resource]] = ["BerthServer": webUIFiles.sorted().map { .embedInCode("UI/" + $0) }]

// Tests that need more than their own module (end-to-end tests drive berthd and the CLI).
let testExtras: [String: [String]] = [
    "BerthServerTests": ["BerthClient", "BerthCLI", "BerthXML"],
    "BerthFormatsTests": ["BerthXML"],
]

let uses = Dictionary(uniqueKeysWithValues: modules.map { ($0.name, $0.uses) })
func closure(_ names: [String]) -> Set<String> {
    var seen = Set<String>()
    var stack = names
    while let name = stack.popLast() {
        if seen.insert(name).inserted { stack += uses[name] ?? [] }
    }
    return seen
}

let only = ProcessInfo.processInfo.environment["BERTH_ONLY"].map {
    closure($0.split(separator: ",").map { String($0.trimmingCharacters(in: .whitespaces)) })
}
func wanted(_ name: String) -> Bool { only?.contains(name) ?? true }
let needsPackages = only.map { !$0.isDisjoint(with: ["BerthServer", "BerthClient", "BerthCLI"]) } ?? true

let settings: [SwiftSetting] = [.swiftLanguageMode(.v6)]
var targets: [Target] = []
if wanted("BerthStore") {
    targets.append(.systemLibrary(name: "CSQLite", providers: [.apt(["libsqlite3-dev"])]))
}
for module in modules where wanted(module.name) {
    targets.append(
        .target(
            name: module.name,
            dependencies: module.uses.map { .target(name: $0) } + module.products,
            resources: resources[module.name],
            swiftSettings: settings))
    let testName = module.name + "Tests"
    let extras = (testExtras[testName] ?? []).filter(wanted)
    if FileManager.default.fileExists(atPath: Context.packageDirectory + "/Tests/" + testName) {
        targets.append(
            .testTarget(
                name: testName,
                dependencies: [.target(name: module.name)] + extras.map { .target(name: $0) },
                // Fixture files are read from the source tree at run time, not bundled.
                exclude: FileManager.default.fileExists(atPath: Context.packageDirectory + "/Tests/\(testName)/Fixtures")
                    ? ["Fixtures"] : [],
                swiftSettings: settings))
    }
}
for exe in executables where wanted(exe.uses) {
    // The short-lived executables link the Swift runtime and Foundation statically. The
    // bootloader: no dynamic loading of libswiftCore saves most of its start-up time, which is
    // most of a whole PyGRUB-style run. `berth`: a short command (`list`, `domstate`) is mostly
    // process start-up, and loading and relocating ~25 shared libraries (Foundation, ICU,
    // dispatch, the Swift runtime) was a third of it (release, whole process: domstate 28.6 ->
    // 22.5 ms; virsh 20.5 ms; see docs/ARCHITECTURE.md, Decisions). berthd stays dynamic: measured static, its Rss was the same (48.4 vs 48.7 MiB
    // idle; it is mostly clean text either way) and its Pss higher wherever another Swift
    // program shares the libraries.
    // Only the Swift runtime's own libraries are named by the modules we compile against (the
    // dynamic toolchain's); static Foundation needs its C parts named too (CoreFoundation, ICU,
    // libxml2 behind FoundationXML), and lld, which finds symbols whatever the archive order.
    let staticRuntime: [LinkerSetting] = [
        .unsafeFlags(
            ["-static-stdlib", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"]
                + ["_FoundationCollections", "CoreFoundation", "_FoundationICU", "_FoundationCShims", "_CFXMLInterface", "xml2"]
                .map { "-l" + $0 })
    ]
    // berthd: its ~80,000 relative relocations packed (DT_RELR, glibc 2.36+; lld) instead of
    // a 1.9 MB table of 24-byte entries that the loader reads at every start and that then
    // stays resident for the daemon's life.
    let packedRelocations: [LinkerSetting] = [
        .unsafeFlags(["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])
    ]
    let linker: [LinkerSetting] =
        switch exe.name {
        case "berth": staticRuntime
        case "berth-bootloader": [.unsafeFlags(["-static-stdlib"])]  // no Foundation to name
        default: packedRelocations
        }
    targets.append(
        .executableTarget(
            name: exe.name, dependencies: [.target(name: exe.uses)], swiftSettings: settings, linkerSettings: linker))
}

let package = Package(
    name: "Berth",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "berth", targets: ["berth"]),
        .executable(name: "berthd", targets: ["berthd"]),
        .executable(name: "berth-bootloader", targets: ["berth-bootloader"]),
    ].filter { _ in only == nil },
    dependencies: needsPackages
        ? [
            .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
            .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
            .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0", traits: []),
            .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
            .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
            .package(url: "https://github.com/swift-server/async-http-client", from: "1.24.0"),
            .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
            .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
            .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.27.0"),
            .package(url: "https://github.com/apple/swift-certificates", from: "1.5.0"),
            .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
            .package(url: "https://github.com/apple/swift-asn1", from: "1.0.0"),
        ] : [],
    targets: targets
)
