import BerthModel
import FoundationEssentials
import Glibc

extension BerthClient {
    public func networks() async throws -> [NetworkInfo] {
        try await call(.GET, "/v1/networks", as: [NetworkInfo].self)
    }

    public func network(_ name: String) async throws -> NetworkInfo {
        try await call(.GET, "/v1/networks/\(Self.escape(name))", as: NetworkInfo.self)
    }

    public func defineNetwork(_ spec: NetworkSpec) async throws -> NetworkInfo {
        try await call(.POST, "/v1/networks", body: spec, as: NetworkInfo.self)
    }

    public func undefineNetwork(_ name: String) async throws {
        try check(try await transport.send(method: .DELETE, path: "/v1/networks/\(Self.escape(name))"))
    }

    public func startNetwork(_ name: String) async throws -> NetworkInfo {
        try await call(.POST, "/v1/networks/\(Self.escape(name))/start", as: NetworkInfo.self)
    }

    public func destroyNetwork(_ name: String) async throws -> NetworkInfo {
        try await call(.POST, "/v1/networks/\(Self.escape(name))/destroy", as: NetworkInfo.self)
    }

    public func setNetworkAutostart(_ name: String, _ enabled: Bool) async throws -> NetworkInfo {
        struct Body: Encodable { var autostart: Bool }
        return try await call(
            .PUT, "/v1/networks/\(Self.escape(name))/autostart", body: Body(autostart: enabled), as: NetworkInfo.self)
    }

    public func leases(_ name: String) async throws -> [DHCPLease] {
        try await call(.GET, "/v1/networks/\(Self.escape(name))/leases", as: [DHCPLease].self)
    }

    public func addReservation(_ host: DHCPHost, network name: String) async throws -> NetworkInfo {
        try await call(.POST, "/v1/networks/\(Self.escape(name))/dhcp-hosts", body: host, as: NetworkInfo.self)
    }

    public func removeReservation(_ mac: MACAddress, network name: String) async throws -> NetworkInfo {
        try await call(.DELETE, "/v1/networks/\(Self.escape(name))/dhcp-hosts/\(mac)", as: NetworkInfo.self)
    }
}
