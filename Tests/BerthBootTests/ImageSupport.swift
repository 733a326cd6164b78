#if canImport(Glibc)
    import Glibc
#endif

/// Runs a host tool with an argument array (no shell) and returns its exit status.
func runTool(_ argv: [String]) -> Int32 {
    var pid: pid_t = 0
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
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

    init?(_ files: [String: [UInt8]]) {
        directory = TemporaryDirectory()
        let tree = directory.path + "/tree"
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
        guard runTool(["mke2fs", "-q", "-F", "-t", "ext4", "-d", tree, directory.path + "/disk.img", "16M"]) == 0 else { return nil }
        _ = runTool(["rm", "-rf", tree])
    }

    func remove() { directory.remove() }
}
