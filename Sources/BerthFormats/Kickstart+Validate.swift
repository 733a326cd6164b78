// Fuzz builds compile BerthModel's sources into this module (fuzz/targets/*.swift).
#if canImport(BerthModel)
    import BerthModel
#endif

/// How one kickstart command's words are read.
struct CommandGrammar: Sendable {
    /// Options that take a value (`--size 100` or `--size=100`).
    var values: Set<String>
    /// Options that stand alone (`--grow`).
    var flags: Set<String>
    var positional: ClosedRange<Int>
    /// Required options; `a|b` means either.
    var required: [String]
    /// Takes any options (authconfig passes them on to another tool).
    var free = false

    init(_ values: String = "", flags: String = "", positional: ClosedRange<Int> = 0...0, required: [String] = [], free: Bool = false) {
        self.values = Set(values.split(separator: " ").map(String.init))
        self.flags = Set(flags.split(separator: " ").map(String.init))
        self.positional = positional
        self.required = required
        self.free = free
    }
}

/// The commands of pykickstart's RHEL 5–9 / Fedora handlers that Berth knows.
enum KickstartGrammar {
    static let commands: [String: CommandGrammar] = {
        let many = 0...Int.max
        var table: [String: CommandGrammar] = [
            "install": .init(), "upgrade": .init(), "text": .init(flags: "non-interactive"),
            "graphical": .init(flags: "non-interactive"), "cmdline": .init(), "skipx": .init(),
            "interactive": .init(), "autostep": .init(flags: "autoscreenshot"), "zerombr": .init(),
            "mediacheck": .init(), "rescue": .init(flags: "nomount romount"), "cdrom": .init(),
            "reboot": .init(flags: "eject kexec"), "poweroff": .init(flags: "eject kexec"),
            "halt": .init(flags: "eject kexec"), "shutdown": .init(flags: "eject kexec"),
            "firstboot": .init(flags: "enable enabled disable disabled reconfig"),
            "eula": .init(flags: "agreed"),
            "url": .init(
                "url mirrorlist metalink proxy sslcacert sslclientcert sslclientkey", flags: "noverifyssl", required: ["url|mirrorlist|metalink"]),
            "nfs": .init("server dir opts", required: ["server", "dir"]),
            "harddrive": .init("partition dir biospart", required: ["dir"]),
            "liveimg": .init("url proxy checksum", flags: "noverifyssl", required: ["url"]),
            "lang": .init("addsupport", positional: 1...1),
            "keyboard": .init("vckeymap xlayouts switch", positional: 0...1),
            "network": .init(
                "device bootproto ip ipv6 netmask gateway ipv6gw nameserver hostname onboot mtu ethtool essid wepkey wpakey dhcpclass bondslaves bondopts vlanid interfacename teamslaves teamconfig bridgeslaves bridgeopts bindto",
                flags: "noipv4 noipv6 activate no-activate nodns nodefroute notksdevice"),
            "rootpw": .init(flags: "iscrypted plaintext lock allow-ssh", positional: 0...1),
            "user": .init("name password groups homedir shell uid gid gecos", flags: "iscrypted plaintext lock", required: ["name"]),
            "group": .init("name gid", required: ["name"]),
            "sshpw": .init("username", flags: "iscrypted plaintext lock sshkey", positional: 1...1, required: ["username"]),
            "sshkey": .init("username", positional: 1...1, required: ["username"]),
            "firewall": .init(
                "port trust service remove-service",
                flags: "enabled enable disabled disable ssh smtp http ftp telnet high medium use-system-defaults"),
            "authconfig": .init(positional: many, free: true), "auth": .init(positional: many, free: true),
            "authselect": .init(positional: many, free: true),
            "selinux": .init(flags: "enforcing permissive disabled"),
            "timezone": .init("ntpservers", flags: "utc isUtc nontp", positional: 0...1),
            "timesource": .init("ntp-server ntp-pool", flags: "ntp-disable nts"),
            "bootloader": .init(
                "location driveorder append password md5pass timeout boot-drive extlinux",
                flags: "iscrypted leavebootorder upgrade lba32 disabled nombr useLilo linear nolinear"),
            "clearpart": .init("list drives disklabel", flags: "all linux none initlabel"),
            "ignoredisk": .init("drives only-use", flags: "interactive"),
            "part": .init(
                "size maxsize ondisk ondrive fstype onpart usepart label fsoptions start end passphrase onbiosdisk bytes-per-inode fsprofile mkfsoptions cipher luks-version",
                flags: "grow asprimary noformat recommended encrypted resize hibernation active", positional: 1...1),
            "volgroup": .init("pesize reserved-space reserved-percent", flags: "useexisting noformat", positional: 1...Int.max),
            "logvol": .init(
                "vgname name size maxsize fstype percent label fsoptions passphrase poolname chunksize metadatasize cachesize cachemode cachepvs cipher luks-version mkfsoptions",
                flags: "grow recommended useexisting noformat encrypted resize thinpool thin hibernation",
                positional: 1...1, required: ["vgname", "name"]),
            "raid": .init(
                "level device fstype spares label fsoptions passphrase chunksize cipher luks-version",
                flags: "noformat useexisting encrypted", positional: 1...Int.max, required: ["level", "device"]),
            "autopart": .init("type fstype passphrase cipher luks-version", flags: "encrypted nolvm nohome noboot noswap"),
            "reqpart": .init(flags: "add-boot"),
            "services": .init("enabled disabled"),
            "logging": .init("host port level"),
            "repo": .init(
                "name baseurl mirrorlist metalink cost excludepkgs includepkgs proxy", flags: "noverifyssl install ignoregroups",
                required: ["name", "baseurl|mirrorlist|metalink"]),
            "xconfig": .init("defaultdesktop driver resolution depth videoram hsync vsync monitor", flags: "startxonboot noprobe"),
            "monitor": .init("hsync vsync monitor", flags: "noprobe"),
            "mouse": .init("device", flags: "emulthree", positional: 0...1),
            "vnc": .init("host port password", flags: "connect"),
            "key": .init(flags: "skip", positional: 0...1),
            "device": .init("opts", positional: 1...2),
            "driverdisk": .init("source biospart type", positional: 0...1),
            "iscsi": .init("target ipaddr port user password reverse-user reverse-password iface"),
            "iscsiname": .init(positional: 1...1),
            "multipath": .init("name device rule"),
            "dmraid": .init("name dev"),
            "zfcp": .init("devnum wwpn fcplun"),
            "fcoe": .init("nic", flags: "dcb autovlan"),
            "realm": .init(positional: many, free: true),
            "module": .init("name stream", flags: "disable"),
            "ostreesetup": .init("osname remote url ref", flags: "nogpg"),
            "snapshot": .init("name when", positional: 1...1),
            "%include": .init(positional: 1...1), "%ksappend": .init(positional: 1...1),
        ]
        table["partition"] = table["part"]
        return table
    }()

    struct Split {
        var parsed: (options: [(name: String, value: String?)], positionals: [String])
        var problems: [String]
    }

    static func split(_ command: Kickstart.Command) -> Split {
        let grammar = commands[command.name]
        var options: [(name: String, value: String?)] = []
        var positionals: [String] = []
        var problems: [String] = []
        var index = 0
        let words = command.arguments
        while index < words.count {
            let word = words[index]
            index += 1
            guard word.hasPrefix("--"), word.count > 2 else {
                positionals.append(word)
                continue
            }
            var name = String(word.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            if let grammar, !grammar.free {
                if grammar.values.contains(name) {
                    if value == nil {
                        if index < words.count, !words[index].hasPrefix("--") {
                            value = words[index]
                            index += 1
                        } else {
                            problems.append("option --\(name) of '\(command.name)' needs a value")
                        }
                    }
                } else if grammar.flags.contains(name) {
                    if let given = value, !["yes", "no", "true", "false", "1", "0", "on", "off"].contains(given.lowercased()) {
                        problems.append("option --\(name) of '\(command.name)' takes no value (given '\(given)')")
                    }
                } else {
                    problems.append("'\(command.name)' has no option --\(name)")
                }
            }
            options.append((name, value))
        }
        return Split(parsed: (options, positionals), problems: problems)
    }
}

/// A command with its words split once (validation looks at each option many times).
struct ParsedCommand {
    let name: String
    let line: Int
    let options: [(name: String, value: String?)]
    let positionals: [String]
    let problems: [String]

    init(_ command: Kickstart.Command) {
        let split = KickstartGrammar.split(command)
        name = command.name
        line = command.line
        options = split.parsed.options
        positionals = split.parsed.positionals
        problems = split.problems
    }

    func option(_ key: String) -> String? { options.last(where: { $0.name == key }).map { $0.value ?? "" } }
    func has(_ key: String) -> Bool { options.contains { $0.name == key } }
}

extension Kickstart {
    /// One thing wrong with a kickstart, at its line.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public enum Severity: String, Sendable { case error, warning }
        public var line: Int
        public var severity: Severity
        public var message: String
        public init(line: Int, severity: Severity = .error, message: String) {
            self.line = line
            self.severity = severity
            self.message = message
        }
        public var description: String { "line \(line): \(severity.rawValue): \(message)" }
    }

    /// Checks the kickstart the way Anaconda would before installing: unknown commands and
    /// options, missing required options and arguments, sizes that are not numbers, logical
    /// volumes on undefined volume groups, volume groups on undefined partitions, partitions
    /// on drives clearpart/ignoredisk exclude, duplicate mount points.
    public func validate() -> [Problem] {
        let commands = self.commands.map(ParsedCommand.init)
        func command(_ name: String) -> ParsedCommand? { commands.last { $0.name == name } }
        var problems: [Problem] = []
        func error(_ line: Int, _ message: String) { problems.append(Problem(line: line, message: message)) }
        func warning(_ line: Int, _ message: String) { problems.append(Problem(line: line, severity: .warning, message: message)) }

        var seen: [String: Int] = [:]
        let once: Set<String> = [
            "lang", "keyboard", "rootpw", "timezone", "bootloader", "clearpart", "selinux", "firewall", "url", "nfs", "autopart", "zerombr",
            "install", "upgrade",
        ]
        for command in commands {
            guard let grammar = KickstartGrammar.commands[command.name] else {
                error(command.line, "unknown command '\(command.name)'")
                continue
            }
            if once.contains(command.name) {
                if let first = seen[command.name] {
                    warning(command.line, "'\(command.name)' is given again (first on line \(first)); the last one wins")
                } else {
                    seen[command.name] = command.line
                }
            }
            for message in command.problems { error(command.line, message) }
            let count = command.positionals.count
            if !grammar.positional.contains(count) {
                if count < grammar.positional.lowerBound {
                    error(
                        command.line,
                        "'\(command.name)' needs \(grammar.positional.lowerBound == 1 ? "an argument" : "\(grammar.positional.lowerBound) arguments")\(Self.argumentHint[command.name].map { " (\($0))" } ?? "")"
                    )
                } else {
                    error(
                        command.line,
                        "'\(command.name)' takes at most \(grammar.positional.upperBound) argument\(grammar.positional.upperBound == 1 ? "" : "s"), found '\(command.positionals.joined(separator: " "))'"
                    )
                }
            }
            let names = Set(command.options.map(\.name))
            for requirement in grammar.required {
                let choices = requirement.split(separator: "|").map(String.init)
                if !choices.contains(where: names.contains) {
                    error(command.line, "'\(command.name)' needs --\(choices.joined(separator: " or --"))")
                }
            }
            for (name, value) in command.options where ["size", "maxsize", "pesize", "percent", "grow-size"].contains(name) {
                if let value, Int(value) == nil {
                    error(command.line, "--\(name)=\(value) of '\(command.name)' is not a whole number")
                }
            }
        }
        if let rootpw = command("rootpw"), rootpw.positionals.isEmpty, !rootpw.has("lock") {
            error(rootpw.line, "'rootpw' needs a password (or --lock)")
        }
        if command("lang") == nil { warning(1, "no 'lang' command: the installer will stop and ask for a language") }
        if command("rootpw") == nil && !commands.contains(where: { $0.name == "user" }) {
            warning(1, "no 'rootpw' or 'user': the installer will stop and ask for a password")
        }

        // Storage layout cross-checks.
        let clearpart = command("clearpart")
        let cleared = clearpart?.option("drives").map(Self.driveList)
        let ignoredisk = command("ignoredisk")
        let ignored = ignoredisk?.option("drives").map(Self.driveList) ?? []
        let onlyUse = ignoredisk?.option("only-use").map(Self.driveList)
        var partitions: [String: Int] = [:]
        var mounts: [String: Int] = [:]
        for part in commands where part.name == "part" || part.name == "partition" {
            guard let mount = part.positionals.first else { continue }
            if mount.hasPrefix("pv.") || mount.hasPrefix("raid.") || mount.hasPrefix("btrfs.") {
                if let first = partitions[mount] { error(part.line, "partition '\(mount)' is defined twice (first on line \(first))") }
                partitions[mount] = part.line
            } else if mount != "swap" && mount != "none" {
                if let first = mounts[mount] { error(part.line, "mount point \(mount) is used twice (first on line \(first))") }
                mounts[mount] = part.line
            }
            let drive = part.option("ondisk") ?? part.option("ondrive")
            if let drive, !drive.isEmpty {
                let name = Self.driveName(drive)
                if let cleared, !cleared.contains(name) {
                    error(
                        part.line,
                        "'part \(mount)' is on \(name), but 'clearpart --drives' (line \(clearpart?.line ?? 0)) only clears \(cleared.joined(separator: ","))"
                    )
                }
                if ignored.contains(name) {
                    error(
                        part.line,
                        "'part \(mount)' is on \(name), which 'ignoredisk --drives' (line \(ignoredisk?.line ?? 0)) hides from the installer")
                }
                if let onlyUse, !onlyUse.contains(name) {
                    error(
                        part.line,
                        "'part \(mount)' is on \(name), but 'ignoredisk --only-use' (line \(ignoredisk?.line ?? 0)) allows only \(onlyUse.joined(separator: ","))"
                    )
                }
            }
        }
        var groups: [String: Int] = [:]
        for group in commands where group.name == "volgroup" {
            let positionals = group.positionals
            guard let name = positionals.first else { continue }
            if let first = groups[name] { error(group.line, "volume group '\(name)' is defined twice (first on line \(first))") }
            groups[name] = group.line
            let members = positionals.dropFirst()
            if members.isEmpty && !group.has("useexisting") && !group.has("noformat") {
                error(group.line, "volume group '\(name)' names no physical volumes (add the partition, e.g. 'pv.01')")
            }
            for member in members where partitions[member] == nil {
                error(group.line, "volume group '\(name)' uses '\(member)', but no 'part \(member)' defines it")
            }
        }
        var volumes: [String: Int] = [:]
        for volume in commands where volume.name == "logvol" {
            if let group = volume.option("vgname"), !group.isEmpty, groups[group] == nil {
                error(volume.line, "logical volume '\(volume.positionals.first ?? "")' names volume group '\(group)', which no 'volgroup' defines")
            }
            if let group = volume.option("vgname"), let name = volume.option("name") {
                let key = group + "/" + name
                if let first = volumes[key] { error(volume.line, "logical volume \(key) is defined twice (first on line \(first))") }
                volumes[key] = volume.line
            }
            if let mount = volume.positionals.first, mount != "swap", mount != "none" {
                if let first = mounts[mount] { error(volume.line, "mount point \(mount) is used twice (first on line \(first))") }
                mounts[mount] = volume.line
            }
        }
        if !commands.contains(where: { ["part", "partition", "logvol", "autopart", "raid", "reqpart"].contains($0.name) }) {
            warning(1, "no storage layout (part/logvol/autopart): the installer will stop and ask")
        }

        for section in sections {
            switch section.name {
            case "packages":
                for argument in section.arguments
                where ![
                    "--nobase", "--ignoremissing", "--excludedocs", "--default", "--resolvedeps", "--ignoredeps", "--nocore", "--instLangs",
                    "--multilib", "--excludeWeakdeps", "--retries", "--timeout", "--inst-langs", "--exclude-weakdeps",
                ].contains(where: { argument == $0 || argument.hasPrefix($0 + "=") }) {
                    error(section.line, "%packages has no option \(argument)")
                }
            case "pre", "post", "pre-install", "traceback", "onerror":
                for argument in section.arguments
                where !["--nochroot", "--interpreter", "--erroronfail", "--log"].contains(where: { argument == $0 || argument.hasPrefix($0 + "=") })
                    && !argument.hasPrefix("/")
                {
                    error(section.line, "%\(section.name) has no option \(argument)")
                }
            case "addon", "anaconda": break
            default: error(section.line, "unknown section %\(section.name)")
            }
        }
        return problems.sorted { $0.line < $1.line }
    }

    static let argumentHint: [String: String] = [
        "lang": "e.g. lang en_US.UTF-8", "part": "the mount point, e.g. part /boot", "partition": "the mount point",
        "logvol": "the mount point, e.g. logvol /", "volgroup": "the group name, e.g. volgroup VolGroup00 pv.01",
        "raid": "the mount point and members", "iscsiname": "the initiator name", "sshpw": "the password",
        "sshkey": "the key", "device": "the module name", "snapshot": "the volume", "%include": "a path or URL",
        "%ksappend": "a path or URL",
    ]

    /// `xvda,xvdb` or `/dev/disk/by-id/x` → plain drive names.
    static func driveList(_ text: String) -> [String] {
        text.split(separator: ",").map { driveName(String($0)) }
    }

    static func driveName(_ text: String) -> String {
        text.hasPrefix("/dev/") && !text.hasPrefix("/dev/disk/") ? String(text.dropFirst(5)) : text
    }

    // MARK: Disk size

    /// How much disk the partitioning asks for.
    public struct DiskRequirement: Sendable, Equatable {
        /// Total MiB over all drives.
        public var totalMiB: Int
        /// MiB per drive named by `--ondisk` (`""` for partitions with no drive).
        public var perDrive: [String: Int]
    }

    /// The smallest disk the storage layout fits on: partition sizes plus, for each volume
    /// group, the larger of its physical volumes and its logical volumes (each rounded up to
    /// the group's extent size). `--grow` counts at its `--size`; a missing size counts 0.
    public var diskRequirement: DiskRequirement {
        let commands = self.commands.map(ParsedCommand.init)
        // Sizes come from the file: clamp them (1 EiB) so no sum can overflow.
        func clamped(_ text: String?) -> Int { min(max(0, text.flatMap { Int($0) } ?? 0), 1 << 40) }
        var perDrive: [String: Int] = [:]
        var pvDrive: [String: String] = [:]
        var pvSize: [String: Int] = [:]
        for part in commands where part.name == "part" || part.name == "partition" {
            let drive = Self.driveName(part.option("ondisk") ?? part.option("ondrive") ?? "")
            let size = clamped(part.option("size"))
            let mount = part.positionals.first ?? ""
            if mount.hasPrefix("pv.") {
                pvDrive[mount] = drive
                pvSize[mount] = size
            }
            perDrive[drive, default: 0] += size
        }
        for group in commands where group.name == "volgroup" {
            guard let name = group.positionals.first else { continue }
            let members = Array(group.positionals.dropFirst())
            // --pesize is in KiB (default 4 MiB).
            let extentMiB = min(max(1, (group.option("pesize").flatMap { Int($0) } ?? 4096) / 1024), 1 << 30)
            var logical = 0
            for volume in commands where volume.name == "logvol" && volume.option("vgname") == name {
                let size = clamped(volume.option("size"))
                logical += (size + extentMiB - 1) / extentMiB * extentMiB
            }
            let physical = members.reduce(0) { $0 + (pvSize[$1] ?? 0) }
            if logical > physical {
                let drive = members.first.flatMap { pvDrive[$0] } ?? ""
                perDrive[drive, default: 0] += logical - physical
            }
        }
        return DiskRequirement(totalMiB: perDrive.values.reduce(0, +), perDrive: perDrive)
    }

    /// Shorthand for `diskRequirement.totalMiB`.
    public var minimumDiskMiB: Int { diskRequirement.totalMiB }
}
