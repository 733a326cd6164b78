import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// `/v1/networks…`: definitions, start and stop, reservations and leases.
struct NetworksController<Context: RequestContext> {
    let networks: NetworkManager

    func add(to group: RouterGroup<Context>) {
        group.get("networks") { _, _ in try JSONResponse.make(try networks.list()) }
        group.post("networks") { request, _ in
            let spec = try await JSONResponse.decode(NetworkSpec.self, from: request)
            return try JSONResponse.make(try await networks.define(spec), status: .created)
        }
        group.get("networks/:network") { _, context in
            try JSONResponse.make(try networks.info(try context.parameters.require("network")))
        }
        group.delete("networks/:network") { _, context in
            try await networks.undefine(try context.parameters.require("network"))
            return Response(status: .noContent)
        }
        group.post("networks/:network/start") { _, context in
            try JSONResponse.make(try await networks.start(try context.parameters.require("network")))
        }
        group.post("networks/:network/destroy") { _, context in
            try JSONResponse.make(try await networks.destroy(try context.parameters.require("network")))
        }
        group.put("networks/:network/autostart") { request, context in
            let body = try await JSONResponse.decode(AutostartBody.self, from: request)
            return try JSONResponse.make(
                try await networks.setAutostart(try context.parameters.require("network"), body.autostart))
        }
        group.get("networks/:network/leases") { _, context in
            try JSONResponse.make(try networks.leases(try context.parameters.require("network")))
        }
        group.post("networks/:network/dhcp-hosts") { request, context in
            let host = try await JSONResponse.decode(DHCPHost.self, from: request)
            return try JSONResponse.make(
                try networks.addReservation(host, network: try context.parameters.require("network")), status: .created)
        }
        group.delete("networks/:network/dhcp-hosts/:mac") { _, context in
            let text = try context.parameters.require("mac")
            guard let mac = MACAddress(text) else {
                throw BerthError(
                    .invalidArgument, "'\(text)' is not a MAC address.", remedy: "Give it as 52:54:00:12:34:56.")
            }
            return try JSONResponse.make(try networks.removeReservation(mac: mac, network: try context.parameters.require("network")))
        }
    }
}
