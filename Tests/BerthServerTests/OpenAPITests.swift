import BerthStore
import Foundation
import Testing

@testable import BerthServer

/// docs/openapi.yaml must list exactly the routes berthd serves.
@Suite struct OpenAPITests {
    @Test func documentMatchesTheRouter() async throws {
        let directory = "/tmp/berth-openapi-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let driver = await QEMUGuestDriver(runtimeRoot: directory + "/run", logRoot: directory + "/logs")
        let hypervisor = try Hypervisor(
            catalog: try Catalog(path: directory + "/catalog.sqlite"), driver: driver,
            bootPreparer: BootPreparer { _, _ in nil }, stateDirectory: directory, isolateGuests: false)
        let served = Set(
            Daemon.router(hypervisor: hypervisor, token: nil).routes.map { route in
                "\(route.method.rawValue) " + "\(route.path)".replacing(/:(\w+)/) { "{\($0.1)}" }
            })

        let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let yaml = try String(contentsOf: package.appendingPathComponent("docs/openapi.yaml"), encoding: .utf8)
        var documented = Set<String>()
        var currentPath: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("  /"), line.hasSuffix(":") {
                currentPath = String(line.dropFirst(2).dropLast())
            } else if let path = currentPath, let match = line.wholeMatch(of: /\s{4}(get|put|post|delete|head):/) {
                documented.insert("\(match.1.uppercased()) \(path)")
            } else if !line.hasPrefix(" "), !line.isEmpty {
                currentPath = nil
            }
        }
        #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented))")
        #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served))")
        #expect(served.count >= 14)
    }
}
