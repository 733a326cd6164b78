/// An install tree recognised the way virt-install's `urldetect.py` recognised one: which
/// distribution it holds and where its installer kernel and initrd are.
public struct InstallTree: Sendable, Equatable {
    /// virt-install's distribution classes, in the order they are tried.
    public enum Distro: String, Sendable, CaseIterable {
        case fedora, rhel, centos, sles, sled, opensuse, debian, ubuntu, mageia
        /// A `.treeinfo` of a family Berth does not know (ClearOS, Oracle Linux …).
        case genericTreeinfo = "generic-treeinfo"
        /// No metadata, but a known kernel layout (`images/pxeboot/vmlinuz`, `install.amd/vmlinuz` …).
        case unknown
    }

    /// A kernel and its initrd, as paths relative to the tree's root.
    public struct KernelPair: Sendable, Equatable, Hashable {
        public var kernel: String
        public var initrd: String

        public init(kernel: String, initrd: String) {
            self.kernel = kernel
            self.initrd = initrd
        }
    }

    public var distro: Distro
    /// The tree's own name for itself: `CentOS 6.10`, `openSUSE Leap 42.3`, `Debian GNU/Linux 8.10.0 "Jessie"`.
    public var name: String
    /// The release as the tree gives it: `6.10`, `7.6`, `Rawhide`, `42.3`, `10`; nil for rolling trees.
    public var version: String?
    /// The tree's architecture in Berth's spelling (`x86_64`, `i686`, `aarch64`, `ppc64le`, `s390x`).
    public var arch: String?
    /// The `--os-variant` this tree is (`centos6.10`, `rhel7.9`, `fedora-unknown`, `debian10`),
    /// resolved to a release Berth knows as virt-install resolved it against libosinfo; nil when unknown.
    public var osVariant: String?
    /// Kernel/initrd pairs to try, best first; `kernel`/`initrd` are the first.
    public var kernelCandidates: [KernelPair]
    /// Kernel argument that points the installer at the tree: `method` (RHEL/CentOS 5–6, Fedora < 19),
    /// `inst.repo` (RHEL 7+, Fedora 19+), `install` (SUSE); nil for installers that find their own mirror.
    public var sourceArgument: String?
    /// The file that identified the tree (`.treeinfo`, `content`, `current/images/MANIFEST` …).
    public var evidence: String

    public var kernel: String { kernelCandidates.first?.kernel ?? "" }
    public var initrd: String { kernelCandidates.first?.initrd ?? "" }

    /// `method=http://…/` for this tree at `location`, or nil.
    ///
    /// Only meaningful for a network location: a host directory is not reachable from inside the
    /// guest, which is why virt-install added it only for http, https and ftp trees.
    public func sourceKernelArgument(location: String) -> String? {
        sourceArgument.map { "\($0)=\(location)" }
    }

    public init(
        distro: Distro, name: String, version: String?, arch: String?, osVariant: String?,
        kernelCandidates: [KernelPair], sourceArgument: String?, evidence: String
    ) {
        self.distro = distro
        self.name = name
        self.version = version
        self.arch = arch
        self.osVariant = osVariant
        self.kernelCandidates = kernelCandidates
        self.sourceArgument = sourceArgument
        self.evidence = evidence
    }

    /// Largest metadata file read: treeinfo with checksums and SUSE `content` are tens of KiB.
    public static let metadataLimit = 1 << 20

    /// Tree-supplied paths must stay inside the tree: no `..`, no absolute paths, no NULs.
    public static func checkRelativePath(_ path: String, file: String) throws {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), !path.contains("\0"), !components.contains(".."),
            path.utf8.count <= 4096
        else {
            throw InstallTreeError.unsafePath(path: path, file: file)
        }
    }
}

public enum InstallTreeError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Nothing recognisable: lists every file looked for.
    case unrecognized(location: String, lookedFor: [String])
    case fileTooLarge(path: String, limit: Int)
    case cannotRead(path: String, reason: String)
    /// A path that leaves the tree (`../../etc/shadow`), given by `file` or asked for directly.
    case unsafePath(path: String, file: String)
    /// A metadata file that names no kernel or initrd where it must.
    case malformed(file: String, reason: String)
    /// None of the candidate kernel/initrd pairs exist in the tree.
    case noKernel(location: String, tried: [InstallTree.KernelPair])

    public var description: String {
        switch self {
        case .unrecognized(let location, let lookedFor):
            "Could not find an installable distribution at '\(location)': looked for \(lookedFor.joined(separator: ", "))."
        case .fileTooLarge(let path, let limit):
            "'\(path)' in the install tree is larger than \(limit) bytes."
        case .cannotRead(let path, let reason):
            "Cannot read '\(path)' in the install tree: \(reason)."
        case .unsafePath(let path, let file):
            path == file
                ? "'\(path)' is not a path inside the install tree."
                : "'\(file)' names '\(path)', which is not a path inside the install tree."
        case .malformed(let file, let reason):
            "'\(file)' in the install tree is malformed: \(reason)."
        case .noKernel(let location, let tried):
            "No installer kernel found at '\(location)': tried \(tried.map { "\($0.kernel) + \($0.initrd)" }.joined(separator: "; "))."
        }
    }

    public var remedy: String {
        switch self {
        case .unrecognized:
            "The location must be the root directory of an install tree (where .treeinfo or images/ is); check it for typos, or give --location URL,kernel=PATH,initrd=PATH."
        case .fileTooLarge: "This is not install-tree metadata; check the location."
        case .cannotRead: "Check the location and its permissions."
        case .unsafePath: "Use a trusted install tree; Berth will not read outside it."
        case .malformed: "Use an unmodified tree, or give --location URL,kernel=PATH,initrd=PATH."
        case .noKernel: "Check that the tree is complete, or give --location URL,kernel=PATH,initrd=PATH."
        }
    }
}
