#if canImport(Glibc)
    import Glibc
#endif

/// Runs a host tool with an argument array (no shell) and returns its exit status.
func runTool(_ argv: [String], stdin: String? = nil) -> Int32 {
    var pid: pid_t = 0
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    if let stdin { posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    defer { posix_spawn_file_actions_destroy(&actions) }
    guard posix_spawnp(&pid, argv[0], &actions, nil, &cArgs, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status >> 8) & 0xff
}

/// A real ext4 image made by `mke2fs -d` from a directory tree of `files`.
struct Ext4Image {
    let directory: TemporaryDirectory
    var path: String { directory.path + "/disk.img" }

    init?(_ files: [String: [UInt8]], name: String = "disk.img", in existing: TemporaryDirectory? = nil) {
        directory = existing ?? TemporaryDirectory()
        let tree = directory.path + "/tree-" + name
        mkdir(tree, 0o755)
        for (path, bytes) in files {
            var dir = tree
            for part in path.split(separator: "/").dropLast() {
                dir += "/" + part
                mkdir(dir, 0o755)
            }
            let fd = open(tree + path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, bytes.count) }
            close(fd)
        }
        guard runTool(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, directory.path + "/" + name, "8M"]) == 0 else { return nil }
        _ = runTool(["rm", "-rf", tree])
    }

    func remove() { directory.remove() }
}

/// A disk with an MBR (made by sfdisk) and two ext4 partitions: a separate /boot first, then root.
func partitionedDisk(boot: [String: [UInt8]], root: [String: [UInt8]]) -> TemporaryDirectory? {
    let dir = TemporaryDirectory()
    guard Ext4Image(boot, name: "boot.img", in: dir) != nil, Ext4Image(root, name: "root.img", in: dir) != nil else { return nil }
    let disk = dir.path + "/disk.img"
    dir.write("layout", Array("label: dos\nstart=2048, size=16384, type=83, bootable\nstart=18432, size=16384, type=83\n".utf8))
    guard runTool(["truncate", "-s", "18M", disk]) == 0,
        runTool(["sfdisk", "-q", disk], stdin: dir.path + "/layout") == 0,
        runTool(["dd", "if=" + dir.path + "/boot.img", "of=" + disk, "bs=1M", "seek=1", "conv=notrunc"]) == 0,
        runTool(["dd", "if=" + dir.path + "/root.img", "of=" + disk, "bs=1M", "seek=9", "conv=notrunc"]) == 0
    else { return nil }
    return dir
}
