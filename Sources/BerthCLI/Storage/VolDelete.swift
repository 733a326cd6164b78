import ArgumentParser

struct VolDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-delete", abstract: "Delete a volume (refused while a domain's disk is it).")

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            try await client.deleteVolume(pool: pool, name: name)
        }
        print("Vol \(volume) deleted")
    }
}

struct VolWipe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-wipe", abstract: "Replace a volume's content with zeros (same size and format).",
        discussion: "berth vol-wipe disk.img --pool default. Runs as a berthd operation; a progress bar shows on a terminal.")

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            return try await client.wipeVolume(pool: pool, name: name, progress: ProgressBar.show)
        }
        ProgressBar.end()
        print("Vol \(volume) wiped")
    }
}

struct VolClone: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vol-clone", abstract: "Copy a volume (an overlay is flattened) to a new volume in the same pool.",
        discussion:
            "berth vol-clone disk.img copy.img --pool default. Runs as a berthd operation with a progress bar; the copy is written under a hidden name and appears under NEW_NAME only when whole."
    )

    @Argument(help: "Volume: NAME with --pool, POOL/NAME, or its path.") var volume: String
    @Argument(help: "The new volume's name.") var newName: String
    @OptionGroup var volumeOptions: VolumeOptions
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { client in
            let (pool, name) = try await volumeOptions.locate(volume, client: client)
            return try await client.cloneVolume(pool: pool, name: name, to: newName, progress: ProgressBar.show)
        }
        ProgressBar.end()
        print("Vol \(newName) cloned from \(volume)")
    }
}
