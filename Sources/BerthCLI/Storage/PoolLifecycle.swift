import ArgumentParser
import BerthClient

struct PoolStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool-start", abstract: "Start (activate) a storage pool.")
    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.perform(.start, pool: name) }
        print("Pool \(name) started")
    }
}

struct PoolBuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool-build", abstract: "Create a dir pool's target directory.")
    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.perform(.build, pool: name) }
        print("Pool \(name) built")
    }
}

struct PoolDestroy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-destroy", abstract: "Stop (deactivate) a storage pool; its volumes stay.")
    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.perform(.destroy, pool: name) }
        print("Pool \(name) destroyed")
    }
}

struct PoolRefresh: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-refresh", abstract: "Look for volumes made outside Berth, and forget those that are gone.")
    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.perform(.refresh, pool: name) }
        print("Pool \(name) refreshed")
    }
}

struct PoolAutostart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pool-autostart", abstract: "Start the pool whenever berthd starts.")
    @Argument(help: "Pool name.") var name: String
    @Flag(help: "Stop starting it automatically.") var disable = false
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        _ = try await connection.run { try await $0.setPoolAutostart(name, !disable) }
        print(disable ? "Pool \(name) unmarked as autostarted" : "Pool \(name) marked as autostarted")
    }
}

struct PoolUndefine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool-undefine", abstract: "Forget an inactive pool (its files stay on disk).")
    @Argument(help: "Pool name.") var name: String
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await connection.run { try await $0.undefinePool(name) }
        print("Pool \(name) has been undefined")
    }
}
