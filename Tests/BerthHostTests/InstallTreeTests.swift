import BerthModel
import Foundation
import Testing

@testable import BerthHost

/// A scratch directory holding a made-up tree, removed afterwards.
final class ScratchTree {
    let root: String

    init(_ files: [String: String]) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("berth-tree-\(UUID().uuidString)").path
        for (path, text) in files {
            let url = URL(fileURLWithPath: root + "/" + path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    var source: LocalDirectoryInstallTree { LocalDirectoryInstallTree(root: root) }

    deinit { try? FileManager.default.removeItem(atPath: root) }
}

@Suite struct InstallTreeTests {
    @Test func emptyDirectorySaysWhatWasLookedFor() async throws {
        let scratch = try ScratchTree([:])
        do {
            _ = try await InstallTree.recognize(scratch.source)
            Issue.record("an empty directory was recognised")
        } catch let error as InstallTreeError {
            guard case .unrecognized(_, let lookedFor) = error else {
                Issue.record("wrong error \(error)")
                return
            }
            for file in [
                ".treeinfo", "treeinfo", "content", "current/images/MANIFEST", "current/legacy-images/MANIFEST",
                "daily/MANIFEST", ".disk/info", "VERSION", "images/pxeboot/vmlinuz", "install.amd/vmlinuz",
            ] {
                #expect(lookedFor.contains(file), "\(file)")
            }
            #expect(error.description.contains("Could not find an installable distribution"))
            #expect(error.remedy.contains("typos"))
            #expect(error.berthError.code == .notFound)
        }
    }

    @Test func knownLayoutWithoutMetadata() async throws {
        let scratch = try ScratchTree(["images/pxeboot/vmlinuz": "k", "images/pxeboot/initrd.img": "i"])
        let tree = try await InstallTree.recognize(scratch.source)
        #expect(tree.distro == .unknown)
        #expect(tree.kernel == "images/pxeboot/vmlinuz")
        #expect(tree.initrd == "images/pxeboot/initrd.img")
        #expect(try await tree.resolveKernel(in: scratch.source) == .init(kernel: "images/pxeboot/vmlinuz", initrd: "images/pxeboot/initrd.img"))

        let debian = try ScratchTree(["install.amd/vmlinuz": "k", "install.amd/initrd.gz": "i"])
        #expect(try await InstallTree.recognize(debian.source).kernel == "install.amd/vmlinuz")
    }

    @Test func treeinfoWithoutDotIsRead() async throws {
        // Akamai-hosted Satellite trees serve `treeinfo`: dotfiles are not served there.
        let text = try String(contentsOfFile: Fixtures.installTrees + "/centos/6.10/.treeinfo", encoding: .utf8)
        let scratch = try ScratchTree(["treeinfo": text])
        let tree = try await InstallTree.recognize(scratch.source)
        #expect(tree.osVariant == "centos6.10")
        #expect(tree.evidence == "treeinfo")
    }

    @Test func resolveKernelPicksTheFirstPairPresent() async throws {
        let scratch = try ScratchTree([
            "current/images/MANIFEST": "netboot/debian-installer -- PXE boot directory\n",
            "install.amd/vmlinuz": "k", "install.amd/initrd.gz": "i",
        ])
        let source = LocalDirectoryInstallTree(root: scratch.root, location: scratch.root + "/dists/bookworm/main/installer-amd64")
        let tree = try await InstallTree.recognize(source)
        #expect(tree.osVariant == "debian12")
        await #expect(throws: InstallTreeError.self) {
            try await tree.resolveKernel(in: source)
        }

        let mounted = try ScratchTree([
            ".disk/info": "Debian GNU/Linux 12.5.0 \"Bookworm\" - Official amd64 NETINST with firmware 20240210-11:27\n",
            "install.amd/vmlinuz": "k", "install.amd/initrd.gz": "i",
        ])
        let cd = try await InstallTree.recognize(mounted.source)
        #expect(cd.osVariant == "debian12")
        // virt-install's netboot path first; the CD's own kernel is what a loop-mounted ISO has.
        #expect(try await cd.resolveKernel(in: mounted.source).kernel == "install.amd/vmlinuz")
    }

    @Test func hostileTreeinfoPathsAreRefused() async throws {
        let scratch = try ScratchTree([
            ".treeinfo": """
            [general]
            family = Fedora
            version = 30
            arch = x86_64
            [images-x86_64]
            kernel = ../../../../etc/shadow
            initrd = images/pxeboot/initrd.img
            """
        ])
        await #expect(throws: InstallTreeError.unsafePath(path: "../../../../etc/shadow", file: ".treeinfo")) {
            try await InstallTree.recognize(scratch.source)
        }
    }

    @Test func malformedTreeinfoNamesTheFile() async throws {
        let noImages = try ScratchTree([".treeinfo": "[general]\nfamily = Fedora\nversion = 30\narch = x86_64\n"])
        await #expect(throws: InstallTreeError.malformed(file: ".treeinfo", reason: "no kernel and initrd in [images-x86_64]")) {
            try await InstallTree.recognize(noImages.source)
        }
        let garbage = try ScratchTree([".treeinfo": "family = Fedora\n"])
        await #expect(throws: InstallTreeError.malformed(file: ".treeinfo", reason: "line 1: a key before any [section]")) {
            try await InstallTree.recognize(garbage.source)
        }
    }

    @Test func oversizedMetadataIsRefused() async throws {
        let scratch = try ScratchTree([".treeinfo": String(repeating: "#", count: InstallTree.metadataLimit + 1)])
        await #expect(throws: InstallTreeError.fileTooLarge(path: ".treeinfo", limit: InstallTree.metadataLimit)) {
            try await InstallTree.recognize(scratch.source)
        }
    }

    @Test func localDirectoryStaysInsideTheTree() async throws {
        let scratch = try ScratchTree(["inside": "yes"])
        let source = scratch.source
        #expect(try await source.fetch("inside", limit: 10) == Array("yes".utf8))
        #expect(try await source.fetch("missing", limit: 10) == nil)
        #expect(try await source.fetch("inside/below", limit: 10) == nil)
        await #expect(throws: InstallTreeError.unsafePath(path: "../etc/passwd", file: "../etc/passwd")) {
            try await source.fetch("../etc/passwd", limit: 10)
        }
        await #expect(throws: InstallTreeError.unsafePath(path: "/etc/passwd", file: "/etc/passwd")) {
            try await source.fetch("/etc/passwd", limit: 10)
        }
        // A symlink that leaves the tree is refused, one inside it is followed.
        try FileManager.default.createSymbolicLink(atPath: scratch.root + "/escape", withDestinationPath: "/etc/passwd")
        try FileManager.default.createSymbolicLink(atPath: scratch.root + "/alias", withDestinationPath: "inside")
        await #expect(throws: InstallTreeError.unsafePath(path: "escape", file: "escape")) {
            try await source.fetch("escape", limit: 100_000)
        }
        #expect(try await source.fetch("alias", limit: 10) == Array("yes".utf8))
        #expect(try await source.exists("inside"))
        #expect(try await source.exists("missing") == false)
    }

    @Test func treeinfoParserFollowsConfigparser() async throws {
        let info = try TreeInfo(
            text: "; comment\n[general]\nFamily: Red Hat Enterprise Linux\nname = RHEL\n  continued\n[empty]\n",
            file: "t")
        #expect(info.value("general", "family") == "Red Hat Enterprise Linux")
        #expect(info.value("general", "name") == "RHEL\ncontinued")
        #expect(info.sections["empty"] == [:])
    }
}
