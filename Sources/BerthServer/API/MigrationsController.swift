import BerthModel
import FoundationEssentials
import Glibc
import Hummingbird

/// Live migration: `/v1/domains/{name}/migrate` (and `/cancel`) on the source, and
/// `/v1/migrations…` on the destination, which the source berthd calls with the destination's
/// token.
struct MigrationsController<Context: RequestContext> {
    let hypervisor: Hypervisor
    /// The largest console log the source sends along.
    static var maximumConsole: Int { 16 << 20 }

    func add(to group: RouterGroup<Context>) {
        group.post("domains/:name/migrate") { request, context in
            let name = try context.parameters.require("name")
            let wait = try request.query.bool("wait")
            let body = try await JSONResponse.decode(MigrateRequest.self, from: request)
            _ = try MigrationPeer(url: body.destination, token: body.token, options: hypervisor.peerOptions)
            if let bandwidth = body.bandwidth, !(1...1_000_000).contains(bandwidth) {
                throw BerthError(.invalidArgument, "bandwidth must be 1...1000000 MiB/s.", remedy: "Leave it out for no limit.")
            }
            _ = try hypervisor.supervisor(name)
            let operation = hypervisor.operations.runNotingWithProgress(domain: name, action: "migrate") { id, progress in
                try await hypervisor.migrate(name, body, operation: id, progress: progress)
            }
            guard wait else { return try JSONResponse.make(operation, status: .accepted) }
            let done = try await hypervisor.operations.get(operation.id, wait: .seconds(DomainsController<Context>.maximumWait))
            if let error = done.error { throw error }
            return try JSONResponse.make(done)
        }
        group.post("domains/:name/migrate/cancel") { _, context in
            let name = try context.parameters.require("name")
            _ = try hypervisor.catalog.domain(named: name)
            guard hypervisor.operations.cancel(domain: name, action: "migrate") > 0 else {
                throw BerthError(
                    .wrongState, "Domain '\(name)' is not being migrated.", remedy: "'berth migrate \(name) --to URL' starts one.")
            }
            return Response(status: .accepted)
        }
        group.post("migrations") { request, _ in
            let body = try await JSONResponse.decode(IncomingMigrationRequest.self, from: request)
            return try JSONResponse.make(try await hypervisor.prepareIncoming(body), status: .created)
        }
        group.get("migrations/:id") { _, context in
            try JSONResponse.make(try hypervisor.incomingInfo(try context.parameters.require("id")))
        }
        group.put("migrations/:id/console") { request, context in
            let id = try context.parameters.require("id")
            var request = request
            let body: ByteBuffer
            do {
                body = try await request.collectBody(upTo: Self.maximumConsole)
            } catch {
                throw BerthError(.invalidArgument, "The console log is over \(Self.maximumConsole) bytes.", remedy: "Send its tail.")
            }
            try hypervisor.writeIncomingConsole(id, Data(body.readableBytesView))
            return Response(status: .noContent)
        }
        group.post("migrations/:id/finish") { request, context in
            let id = try context.parameters.require("id")
            let body = try await JSONResponse.decode(IncomingFinishRequest.self, from: request)
            return try JSONResponse.make(try await hypervisor.finishIncoming(id, body))
        }
        group.delete("migrations/:id") { _, context in
            try await hypervisor.abortIncoming(try context.parameters.require("id"))
            return Response(status: .noContent)
        }
    }
}
