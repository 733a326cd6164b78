// Parses 10,000 domain configs and 10,000 kickstarts and prints files per second.
// Built by run.sh together with the BerthModel and BerthFormats sources (no SwiftPM
// executable target needed): swiftc -O -parse-as-library … bench/formats/main.swift
import Foundation

@main
struct FormatsBenchmark {
    static func main() throws {
        let fixtures = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "Tests/BerthFormatsTests/Fixtures"
        func load(_ path: String) throws -> String { try String(contentsOfFile: fixtures + "/" + path, encoding: .utf8) }
        let count = 10_000

        // Domain configs: Xen's examples, each made distinct by name, memory and disk.
        let templates = try ["xmexample1", "xmexample.hvm", "xmexample.pv-grub", "xlexample.hvm", "xlexample.pvlinux"].map {
            try load("xen-configs/" + $0)
        }
        let configs = (0..<count).map { index in
            templates[index % templates.count]
                + "\nname = \"bench\(index)\"\nmemory = \(128 + index % 1024)\ndisk = [ 'phy:/dev/vg/g\(index),xvda,w' ]\n"
        }
        let kickstartTemplate = try load("kickstart/seed-centos6.ks")
        let kickstarts = (0..<count).map { index in
            kickstartTemplate.replacingOccurrences(of: "--size=1024", with: "--size=\(1024 + index)")
        }
        let libvirt = try load("libvirt/devel1-xen.xml")
        let xmls = (0..<count / 10).map { libvirt.replacingOccurrences(of: "devel1", with: "devel\($0)") }

        func measure(_ label: String, _ inputs: [String], _ body: (String) throws -> Int) rethrows {
            let bytes = inputs.reduce(0) { $0 + $1.utf8.count }
            let start = ContinuousClock.now
            var checksum = 0
            for input in inputs { checksum &+= try body(input) }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(inputs.count) / seconds
            print(
                "\(label.padding(toLength: 34, withPad: " ", startingAt: 0)) \(inputs.count) files  \(String(format: "%8.3f", seconds)) s  \(String(format: "%9.0f", rate)) files/s  \(String(format: "%6.1f", Double(bytes) / seconds / 1_048_576)) MiB/s  (check \(checksum))"
            )
        }

        try measure("xl/xm config → DomainSpec", configs) { try XLDomain.read($0).spec.memory }
        try measure("xl/xm config → DomainSpec → xl", configs) { XLDomain.write(try XLDomain.read($0).spec).utf8.count }
        try measure("kickstart parse", kickstarts) { try Kickstart.parse($0).commands.count }
        try measure("kickstart parse + validate + size", kickstarts) {
            let kickstart = try Kickstart.parse($0)
            return kickstart.validate().count + kickstart.minimumDiskMiB
        }
        try measure("libvirt XML → DomainSpec", xmls) { try LibvirtXML.read($0).spec.memory }
        let sxp = try load("xen-configs/xend-config.sxp")
        try measure("xend-config.sxp", Array(repeating: sxp, count: count / 10)) { try XendConfig.parse($0).port }
    }
}
