import BerthModel
import Foundation
import Testing

@testable import BerthFormats

@Suite struct VirtInstallOSInfoTests {
    /// The installer arguments virt-install's osdict gives (`get_kernel_url_arg`) and the answer-file
    /// arguments of each installer.
    @Test(
        arguments: [
            ("rhel5", "method", "ks"), ("rhel5.4", "method", "ks"), ("rhel6", "method", "ks"), ("centos6.10", "method", "ks"),
            ("rhel7", "inst.repo", "inst.ks"), ("rhel8.2", "inst.repo", "inst.ks"), ("rhel9", "inst.repo", "inst.ks"),
            ("centos7.0", "inst.repo", "inst.ks"), ("centos-stream9", "inst.repo", "inst.ks"),
            ("almalinux9", "inst.repo", "inst.ks"), ("fedora14", "method", "ks"), ("fedora18", "method", "ks"),
            ("fedora19", "inst.repo", "inst.ks"), ("fedora42", "inst.repo", "inst.ks"),
            ("fedora-rawhide", "inst.repo", "inst.ks"), ("fedora-unknown", "inst.repo", "inst.ks"),
            ("opensuse42.3", "install", "autoyast"), ("opensusetumbleweed", "install", "autoyast"),
            ("sles11sp4", "install", "autoyast"), ("sled15", "install", "autoyast"),
            ("debian12", nil, "url"), ("debiantesting", nil, "url"), ("ubuntu18.04", nil, "url"),
            ("mageia8", nil, "auto_install"), ("generic", nil, nil),
        ] as [(String, String?, String?)])
    func kernelArguments(_ id: String, _ source: String?, _ kickstart: String?) throws {
        let info = try #require(VirtInstallOSInfo.lookup(id), "\(id) is not in the table")
        #expect(info.sourceArgument == source)
        #expect(info.kickstartArgument == kickstart)
    }

    @Test func familiesAndDefaults() throws {
        let rhel6 = try #require(VirtInstallOSInfo.lookup("RHEL6"))
        #expect(rhel6.family == .rhel)
        #expect(rhel6.version == "6")
        #expect(rhel6.defaultMemoryMiB == 1024)
        #expect(rhel6.defaultDiskGiB == 10)
        #expect(rhel6.sourceKernelArgument(location: "http://h/6/") == "method=http://h/6/")
        #expect(rhel6.kickstartKernelArgument(url: "http://h/k.ks") == "ks=http://h/k.ks")
        #expect(VirtInstallOSInfo.lookup("rhel5")?.defaultMemoryMiB == 512)
        #expect(VirtInstallOSInfo.lookup("rhel7.9")?.defaultMemoryMiB == 1536)
        #expect(VirtInstallOSInfo.lookup("fedora14")?.defaultMemoryMiB == 1024)
        #expect(VirtInstallOSInfo.lookup("fedora40")?.defaultDiskGiB == 20)
        let rhel9 = try #require(VirtInstallOSInfo.lookup("rhel9.4"))
        #expect(rhel9.defaultMemoryMiB == 2048 && rhel9.defaultDiskGiB == 20)
        #expect(rhel9.kickstartKernelArgument(url: "http://h/k.ks") == "inst.ks=http://h/k.ks")
        let debian = try #require(VirtInstallOSInfo.lookup("debian10"))
        #expect(debian.family == .debian && debian.name == "Debian 10 (buster)")
        #expect(debian.kickstartKernelArgument(url: "http://h/p.cfg") == "auto=true priority=critical url=http://h/p.cfg")
        #expect(debian.sourceKernelArgument(location: "http://h/") == nil)
        #expect(VirtInstallOSInfo.lookup("ubuntu20.04")?.family == .ubuntu)
        #expect(VirtInstallOSInfo.lookup("sles10sp4")?.family == .suse)
        #expect(VirtInstallOSInfo.lookup("mageia5")?.family == .mageia)
        #expect(VirtInstallOSInfo.lookup("plan9") == nil)
        #expect(VirtInstallOSInfo.knownIDs.count > 300)
        #expect(VirtInstallOSInfo.shortID(fromOSInfoURL: "http://suse.com/sles/11.4") == "sles11sp4")
        #expect(VirtInstallOSInfo.shortID(fromOSInfoURL: "http://fedoraproject.org/fedora/30") == "fedora30")
    }

    /// virt-install's `tests/data/test_urls.ini` lists trees on public mirrors, each with the
    /// os-variant it must be recognised as and, for some, the install-source kernel argument.
    /// Mirrors cannot be reached from the test machine; BerthHostTests recognises the entries that
    /// have a fixture tree. Here every entry is checked against the OS table.
    static func testURLs() throws -> [(section: String, fields: [String: String])] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../BerthHostTests/Fixtures/install-trees/test_urls.ini").standardized.path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var entries: [(section: String, fields: [String: String])] = []
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if trimmed.hasPrefix("[") {
                entries.append((String(trimmed.dropFirst().dropLast()), [:]))
            } else if let equals = trimmed.firstIndex(of: "="), !entries.isEmpty {
                let key = trimmed[..<equals].trimmingCharacters(in: .whitespaces)
                let value = trimmed[trimmed.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                entries[entries.count - 1].fields[key] = value
            }
        }
        return entries
    }

    @Test func everyTestURLsDistroIsKnownWithItsKernelArgument() throws {
        let entries = try Self.testURLs()
        #expect(entries.count == 33)
        for (section, fields) in entries {
            let distro = try #require(fields["distro"], "[\(section)] has no distro")
            // `distro = none`: virt-install expects no variant for the Mageia cauldron tree.
            guard distro != "none" else { continue }
            let info = VirtInstallOSInfo.lookup(distro)
            #expect(info != nil, "[\(section)] distro \(distro) is not in the OS table")
            if let kernelArg = fields["kernelarg"] {
                #expect(info?.sourceArgument == (kernelArg == "None" ? nil : kernelArg), "[\(section)]")
            }
            // A URL install of this distro puts the tree on the installer's command line exactly when
            // the table has an argument for it.
            let url = try #require(fields["url"])
            if let request = try? VirtInstallRequest.parse(arguments: [
                "--name", "t", "--location", url, "--os-variant", distro, "--graphics", "vnc",
            ]) {
                let line = request.installerCommandLine()
                #expect(line == (info?.sourceArgument.map { "\($0)=\(url)" } ?? ""), "[\(section)]")
            } else {
                Issue.record("[\(section)] did not parse")
            }
        }
    }
}
