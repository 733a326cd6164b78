import Foundation
import Testing

@testable import BerthHost

/// virt-install's own recognition fixtures (virt-manager `tests/data/urldetect/`), with the
/// expectations of its `tests/test_urldetect.py`, and its `tests/data/test_urls.ini`.
enum Fixtures {
    static let installTrees = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/install-trees").path

    /// A fixture tree, located as virt-install's test suite located it: a URL ending in the tree's path.
    static func tree(_ relative: String, iso: Bool = false, location: String? = nil) -> LocalDirectoryInstallTree {
        LocalDirectoryInstallTree(
            root: installTrees + "/" + relative,
            location: location ?? "https://virtinst-testsuite.example/" + relative, isISO: iso)
    }
}

/// One `_test(...)` call of virt-install's `test_urldetect.py`.
struct URLDetectCase: Sendable, CustomTestStringConvertible {
    var path: String
    /// Exact os-variant expected; nil means "recognised, variant unknown".
    var variant: String?
    /// When set, the variant must start with this instead (virt-install asserted a substring).
    var variantPrefix: String? = nil
    var kernelSuffix: String? = nil
    var initrdSuffix: String? = nil
    var iso = false
    var arch = "x86_64"
    var distro: InstallTree.Distro

    var testDescription: String { "\(path)\(iso ? " (ISO, \(arch))" : "")" }
}

@Suite struct InstallTreeAcceptanceTests {
    static let cases: [URLDetectCase] = [
        // test_debian
        .init(path: "debian/buster/main/installer-amd64", variant: "debian10", kernelSuffix: "linux", distro: .debian),
        .init(path: "debian/buster/main/installer-s390x", variant: "debian10", kernelSuffix: "kernel.debian", distro: .debian),
        .init(path: "debian/buster/main/installer-ppc64el", variant: "debian10", kernelSuffix: "vmlinux", distro: .debian),
        .init(path: "debian/buster/main/installer-arm64", variant: "debian10", distro: .debian),
        .init(path: "debian/daily-images/amd64", variant: "debiantesting", distro: .debian),
        .init(path: "debian/debian-8.10.0-amd64-netinst.iso", variant: "debian8", kernelSuffix: "linux", distro: .debian),
        .init(
            path: "debian/debian-8.10.0-amd64-netinst.iso", variant: "debian8", kernelSuffix: "install.amd/vmlinuz",
            iso: true, arch: "x86_64", distro: .debian),
        .init(
            path: "debian/debian-8.10.0-s390x-netinst.iso", variant: "debian8", kernelSuffix: "linux_vm", iso: true,
            arch: "s390x", distro: .debian),
        .init(
            path: "debian/debian-8.10.0-ppc64el-netinst.iso", variant: "debian8", kernelSuffix: "vmlinux", iso: true,
            arch: "ppc64le", distro: .debian),
        .init(
            path: "debian/debian-8.10.0-i386-netinst.iso", variant: "debian8", kernelSuffix: "install.386/vmlinuz",
            iso: true, arch: "i686", distro: .debian),
        .init(
            path: "debian/debian-8.10.0-arm64-netinst.iso", variant: "debian8", kernelSuffix: "install.a64/vmlinuz",
            iso: true, arch: "aarch64", distro: .debian),
        // A bad arch falls back to install/vmlinuz; without ISO it falls back to i386 netboot.
        .init(
            path: "debian/debian-8.10.0-badarch-netinst.iso", variant: "debian8", kernelSuffix: "install/vmlinuz",
            iso: true, arch: "badarch", distro: .debian),
        .init(path: "debian/debian-8.10.0-badarch-netinst.iso", variant: "debian8", kernelSuffix: "linux", distro: .debian),
        // test_ubuntu
        .init(path: "ubuntu/bionic/main/installer-amd64", variant: "ubuntu18.04", distro: .ubuntu),
        .init(path: "ubuntu/focal/main/installer-amd64", variant: "ubuntu20.04", distro: .ubuntu),
        .init(path: "ubuntu/ubuntu-17.10-amd64.iso", variant: "ubuntu17.10", kernelSuffix: "install/vmlinuz", iso: true, distro: .ubuntu),
        .init(
            path: "ubuntu/ubuntu-17.10-s390x.iso", variant: "ubuntu17.10", kernelSuffix: "boot/kernel.ubuntu", iso: true,
            arch: "s390x", distro: .ubuntu),
        // test_fedora
        .init(path: "fedora/30", variant: "fedora30", distro: .fedora),
        .init(path: "fedora/rawhide", variant: "fedora-unknown", distro: .fedora),
        .init(path: "fedora/99", variant: "fedora-unknown", distro: .fedora),
        // test_rhel
        .init(path: "rhel/7.6", variant: "rhel7.6", distro: .rhel),
        .init(path: "rhel/7.20", variant: nil, variantPrefix: "rhel7.", distro: .rhel),
        // test_centos
        .init(path: "centos/6.10", variant: "centos6.10", distro: .centos),
        .init(path: "centos/sl7", variant: "centos7.0", distro: .centos),
        // test_opensuse
        .init(path: "opensuse/tumbleweed", variant: "opensusetumbleweed", distro: .opensuse),
        .init(path: "opensuse/10.3", variant: "opensuse10.3", distro: .opensuse),
        .init(path: "opensuse/11.4", variant: "opensuse11.4", distro: .opensuse),
        .init(path: "opensuse/12.3", variant: "opensuse12.3", distro: .opensuse),
        .init(path: "opensuse/13.2", variant: "opensuse13.2", distro: .opensuse),
        .init(path: "opensuse/42.3/", variant: "opensuse42.3", distro: .opensuse),
        .init(path: "opensuse/15.9", variant: nil, variantPrefix: "opensuse15", distro: .opensuse),
        .init(path: "opensuse/badversion/", variant: nil, distro: .opensuse),
        // test_suse
        .init(path: "suse/SLES-10-SP4-DVD-x86_64-GM-DVD1.iso", variant: "sles10sp4", distro: .sles),
        .init(path: "suse/SLES-11-SP4-DVD-s390x-GM-DVD1.iso", variant: "sles11sp4", kernelSuffix: "vmrdr.ikr", distro: .sles),
        .init(path: "suse/SLES-11-SP4-DVD-ppc64-GM-DVD1.iso", variant: "sles11sp4", kernelSuffix: "linux64", distro: .sles),
        // test_mageia
        .init(path: "mageia/5", variant: "mageia5", initrdSuffix: "all.rdz", distro: .mageia),
        .init(path: "mageia/8", variant: "mageia8", initrdSuffix: "all.rdz", distro: .mageia),
        // test_misc
        .init(path: "generic", variant: nil, distro: .genericTreeinfo),
    ]

    @Test(arguments: cases)
    func recognisesAsVirtInstallDid(_ expected: URLDetectCase) async throws {
        let source = Fixtures.tree(expected.path, iso: expected.iso)
        let tree = try await InstallTree.recognize(source, arch: expected.arch)
        #expect(tree.distro == expected.distro)
        if let prefix = expected.variantPrefix {
            #expect(tree.osVariant?.hasPrefix(prefix) == true, "\(tree.osVariant ?? "nil")")
        } else {
            #expect(tree.osVariant == expected.variant)
        }
        if let suffix = expected.kernelSuffix {
            #expect(tree.kernelCandidates.contains { $0.kernel.hasSuffix(suffix) }, "\(tree.kernelCandidates)")
        }
        if let suffix = expected.initrdSuffix {
            #expect(tree.kernelCandidates.contains { $0.initrd.hasSuffix(suffix) }, "\(tree.kernelCandidates)")
        }
        #expect(!tree.kernel.isEmpty && !tree.initrd.isEmpty)
    }

    /// The same trees given as host directories (the seed's loop-mounted ISO), not URLs.
    @Test(arguments: cases.filter { !$0.iso })
    func recognisesLocalDirectories(_ expected: URLDetectCase) async throws {
        let root = Fixtures.installTrees + "/" + expected.path
        let tree = try await InstallTree.recognize(LocalDirectoryInstallTree(root: root), arch: expected.arch)
        #expect(tree.distro == expected.distro)
        if expected.variantPrefix == nil {
            #expect(tree.osVariant == expected.variant)
        }
    }

    @Test func readsTreeinfoDetails() async throws {
        let centos = try await InstallTree.recognize(Fixtures.tree("centos/6.10"))
        #expect(centos.name == "CentOS 6.10")
        #expect(centos.version == "6.10")
        #expect(centos.arch == "x86_64")
        #expect(centos.kernel == "images/pxeboot/vmlinuz")
        #expect(centos.initrd == "images/pxeboot/initrd.img")
        #expect(centos.sourceArgument == "method")
        #expect(centos.evidence == ".treeinfo")
        #expect(
            centos.sourceKernelArgument(location: "http://hypervisor.example.com/install/6/x86_64/")
                == "method=http://hypervisor.example.com/install/6/x86_64/")

        let rhel = try await InstallTree.recognize(Fixtures.tree("rhel/7.6"))
        #expect(rhel.name == "Red Hat Enterprise Linux 7.6")
        #expect(rhel.sourceArgument == "inst.repo")

        let sl = try await InstallTree.recognize(Fixtures.tree("centos/sl7"))
        #expect(sl.name == "Scientific-7.8")
        #expect(sl.sourceArgument == "inst.repo")

        let rawhide = try await InstallTree.recognize(Fixtures.tree("fedora/rawhide"))
        #expect(rawhide.version == "Rawhide")
        #expect(rawhide.sourceArgument == "inst.repo")

        let leap = try await InstallTree.recognize(Fixtures.tree("opensuse/15.9"))
        #expect(leap.kernel == "boot/x86_64/loader/linux")
        #expect(leap.sourceArgument == "install")

        let generic = try await InstallTree.recognize(Fixtures.tree("generic"))
        #expect(generic.name == "ClearOS-7.7.2.280072")
        #expect(generic.sourceArgument == nil)
    }

    @Test func readsSUSEContent() async throws {
        let sles = try await InstallTree.recognize(Fixtures.tree("suse/SLES-10-SP4-DVD-x86_64-GM-DVD1.iso"))
        #expect(sles.name == "SUSE Linux Enterprise Server 10 SP4")
        #expect(sles.version == "10.4")
        #expect(sles.arch == "x86_64")
        #expect(sles.sourceArgument == "install")
        #expect(sles.kernelCandidates.contains(.init(kernel: "boot/x86_64/loader/linux", initrd: "boot/x86_64/loader/initrd")))

        // BASEARCHS i586 x86_64: an x86_64 guest gets the x86_64 installer, an i686 guest the i386 one.
        let both = try await InstallTree.recognize(Fixtures.tree("opensuse/11.4"))
        #expect(both.arch == "x86_64")
        #expect(both.kernelCandidates.last?.kernel == "boot/x86_64/loader/linux")
        let old = try await InstallTree.recognize(Fixtures.tree("opensuse/10.3"), arch: "i686")
        #expect(old.kernelCandidates.last?.kernel == "boot/i386/loader/linux")

        let thirteen = try await InstallTree.recognize(Fixtures.tree("opensuse/13.2"))
        #expect(thirteen.version == "13.2")
        #expect(thirteen.arch == "x86_64")  // REPOID's i586-x86_64
    }

    @Test func readsDebianDetails() async throws {
        let buster = try await InstallTree.recognize(Fixtures.tree("debian/buster/main/installer-amd64"))
        #expect(buster.kernel == "current/images/netboot/debian-installer/amd64/linux")
        #expect(buster.initrd == "current/images/netboot/debian-installer/amd64/initrd.gz")
        #expect(buster.arch == "x86_64")
        #expect(buster.sourceArgument == nil)
        #expect(buster.evidence == "current/images/MANIFEST")

        let s390 = try await InstallTree.recognize(Fixtures.tree("debian/buster/main/installer-s390x"))
        #expect(s390.kernel == "current/images/generic/kernel.debian")
        #expect(s390.arch == "s390x")

        let jessie = try await InstallTree.recognize(Fixtures.tree("debian/debian-8.10.0-amd64-netinst.iso", iso: true))
        #expect(jessie.name.hasPrefix("Debian GNU/Linux 8.10.0"))
        #expect(jessie.arch == "x86_64")
        #expect(jessie.evidence == ".disk/info")
    }

    /// Every entry of virt-install's `test_urls.ini` that has a tree among the fixtures is recognised
    /// as the ini says, with the ini's real URL as the location (release codenames come from it).
    static let iniFixtures: [String: String] = [
        "centos-6-latest": "centos/6.10",
        "opensuse10.3": "opensuse/10.3",
        "opensuse11.4": "opensuse/11.4",
        "opensuse12.3": "opensuse/12.3",
        "opensuse13.2": "opensuse/13.2",
        "opensuseleap-42.3": "opensuse/42.3",
        "opensusetumbleweed": "opensuse/tumbleweed",
        "debiandaily": "debian/daily-images/amd64",
        "ubuntu18.04": "ubuntu/bionic/main/installer-amd64",
        "ubuntu20.04": "ubuntu/focal/main/installer-amd64",
    ]

    static func testURLs() throws -> [String: [String: String]] {
        let text = try String(contentsOfFile: Fixtures.installTrees + "/test_urls.ini", encoding: .utf8)
        return try TreeInfo(text: text, file: "test_urls.ini").sections
    }

    @Test(arguments: iniFixtures.keys.sorted())
    func recognisesTestURLsEntry(_ section: String) async throws {
        let entry = try #require(try Self.testURLs()[section], "test_urls.ini has no [\(section)]")
        let url = try #require(entry["url"])
        let distro = try #require(entry["distro"])
        let root = try #require(Self.iniFixtures[section])
        let tree = try await InstallTree.recognize(
            LocalDirectoryInstallTree(root: Fixtures.installTrees + "/" + root, location: url))
        #expect(tree.osVariant == distro)
        if let kernelArg = entry["kernelarg"] {
            #expect(tree.sourceArgument == (kernelArg == "None" ? nil : kernelArg))
        }
        if let pattern = entry["kernelregex"] {
            let regex = try Regex(pattern)
            #expect(tree.kernelCandidates.contains { (try? regex.wholeMatch(in: $0.kernel)) != nil }, "\(tree.kernel)")
        }
    }

    @Test func everyTestURLsEntryIsAccountedFor() async throws {
        let sections = try Self.testURLs()
        // The ini lists 33 trees on public mirrors; the ones not among the fixtures are checked
        // against the OS table in BerthFormatsTests (VirtInstallOSInfoTests).
        #expect(sections.count == 33)
        for (section, root) in Self.iniFixtures {
            #expect(sections[section] != nil, "\(section)")
            #expect(FileManager.default.fileExists(atPath: Fixtures.installTrees + "/" + root), "\(root)")
        }
    }
}
