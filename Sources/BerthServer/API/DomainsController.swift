import BerthHost
import BerthModel
import BerthPOSIX
import FoundationEssentials
import Glibc
import Hummingbird
import ServiceLifecycle

/// `/v1/domains…`: definitions, lifecycle actions, the console log.
struct DomainsController<Context: RequestContext> {
    let hypervisor: Hypervisor
    var limits = StreamLimits()
    /// The longest an action's `timeout` and an operation's `wait` may be.
    static var maximumWait: Int { 3600 }
    /// The most console bytes `tail` may ask for.
    static var maximumTail: Int { 1 << 30 }

    func add(to group: RouterGroup<Context>) {
        group.get("domains") { _, _ in try DomainListJSON.response(try hypervisor.catalog.summaries()) }
        group.post("domains") { request, _ in
            let spec = try await JSONResponse.decode(DomainSpec.self, from: request)
            return try JSONResponse.make(try hypervisor.define(spec), status: .created)
        }
        group.get("domains/:name") { _, context in
            try JSONResponse.make(try hypervisor.info(try context.parameters.require("name")))
        }
        group.put("domains/:name") { request, context in
            let name = try context.parameters.require("name")
            let spec = try await JSONResponse.decode(DomainSpec.self, from: request)
            guard spec.name == name else {
                throw BerthError(
                    .invalidArgument, "The document names '\(spec.name)' but the path names '\(name)'.",
                    remedy: "Renaming is not supported: define a new domain instead.")
            }
            return try JSONResponse.make(try hypervisor.update(spec))
        }
        group.delete("domains/:name") { request, context in
            let name = try context.parameters.require("name")
            let keepLogs = try request.query.bool("keepLogs")
            try await hypervisor.undefine(name, keepLogs: keepLogs)
            return Response(status: .noContent)
        }
        group.put("domains/:name/autostart") { request, context in
            let name = try context.parameters.require("name")
            let body = try await JSONResponse.decode(AutostartBody.self, from: request)
            try hypervisor.catalog.setAutostart(name, body.autostart)
            return try JSONResponse.make(try hypervisor.info(name))
        }
        group.get("domains/:name/kickstart") { _, context in
            let name = try context.parameters.require("name")
            guard let text = try hypervisor.catalog.kickstart(name) else {
                throw BerthError(
                    .notFound, "Domain '\(name)' has no kickstart stored.",
                    remedy: "Kickstarts are stored by 'berth install' and 'berth reinstall' when ks= is given.")
            }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        group.put("domains/:name/kickstart") { request, context in
            let name = try context.parameters.require("name")
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            try hypervisor.catalog.setKickstart(name, String(decoding: body.readableBytesView, as: UTF8.self))
            return Response(status: .noContent)
        }
        group.put("domains/:name/next") { request, context in
            let name = try context.parameters.require("name")
            let body = try await JSONResponse.decode(NextDefinitionBody.self, from: request)
            try hypervisor.setNextDefinition(name, body.spec, start: body.start)
            return Response(status: .noContent)
        }
        group.delete("domains/:name/next") { _, context in
            try hypervisor.setNextDefinition(try context.parameters.require("name"), nil, start: false)
            return Response(status: .noContent)
        }
        for action in DomainAction.allCases {
            group.post("domains/:name/\(action.rawValue)") { request, context in
                try await perform(action, request: request, name: try context.parameters.require("name"))
            }
        }
        group.get("domains/:name/console") { request, context in
            try consoleLog(request: request, name: try context.parameters.require("name"))
        }
        group.get("operations/:id") { request, context in
            let wait = try request.query.seconds("wait", in: 0...Double(Self.maximumWait)) ?? .zero
            let info = try await hypervisor.operations.get(try context.parameters.require("id"), wait: wait)
            return try JSONResponse.make(info)
        }
    }

    /// Runs a lifecycle action as an operation. With `?wait=true` the answer comes when it is
    /// done (the domain's info, or its error); otherwise 202 with the operation to poll.
    private func perform(_ action: DomainAction, request: Request, name: String) async throws -> Response {
        let query = request.query
        let timeout = Duration.seconds(try query.integer("timeout", in: 0...Self.maximumWait) ?? 60)
        let force = try query.bool("force")
        let wait = try query.bool("wait")
        let supervisor = try hypervisor.supervisor(name)
        let operations = hypervisor.operations
        let operation = operations.runNoting(domain: name, action: action.rawValue) { id in
            switch action {
            case .start: try await supervisor.start { operations.note(id, OperationMessage($0)) }
            case .shutdown: try await force ? supervisor.destroy() : supervisor.shutdown(timeout: timeout)
            case .destroy: try await supervisor.destroy()
            case .reboot: try await supervisor.reboot()
            case .suspend: try await supervisor.suspend()
            case .resume: try await supervisor.resume()
            }
        }
        guard wait else {
            return try JSONResponse.make(operation, status: .accepted)
        }
        var done = try await operations.get(operation.id, wait: timeout + .seconds(30))
        // A start waiting for a slot in a boot storm is answered when it has started (or failed).
        while action == .start, done.status == .running {
            done = try await operations.get(operation.id, wait: .seconds(60))
        }
        if let error = done.error { throw error }
        return try JSONResponse.make(try hypervisor.info(name))
    }

    /// The serial console log: the last `tail` bytes, then (with `follow`) new output as it
    /// is written, until the client goes away.
    private func consoleLog(request: Request, name: String) throws -> Response {
        let info = try hypervisor.info(name)
        guard let path = info.consoleLog else { throw BerthError(.notFound, "Domain '\(name)' has no console log.") }
        let tail = try request.query.integer("tail", in: 0...Self.maximumTail)
        let follow = try request.query.bool("follow")
        // Held by the body until the follower goes away.
        let lease = follow ? try limits.consoleFollowers.acquire() : nil
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                defer { withExtendedLifetime(lease) {} }
                var offset: UInt64 = 0
                var idlePolls = 0
                if let size = FileBytes.size(path) {
                    offset = tail.map { size > UInt64($0) ? size - UInt64($0) : 0 } ?? 0
                }
                while true {
                    if let size = FileBytes.size(path) {
                        if size < offset { offset = 0 }  // rotated
                        if size > offset, let chunk = FileBytes.read(path, from: offset, maxBytes: Int(min(size - offset, 1 << 20))) {
                            offset += UInt64(chunk.count)
                            idlePolls = 0
                            try await writer.write(ByteBuffer(bytes: chunk))
                        }
                    }
                    // A follower must not hold up berthd's graceful shutdown.
                    guard follow, !Task.isShuttingDownGracefully else { break }
                    try await Task.sleep(for: .milliseconds(100))
                    idlePolls += 1
                    if idlePolls >= 20 {
                        // An empty write fails once the client has gone, which ends this loop and
                        // frees the follower's slot; a quiet console would otherwise hold it forever.
                        idlePolls = 0
                        try await writer.write(ByteBuffer())
                    }
                }
                try await writer.finish(nil)
            })
    }
}

/// `/v1/host` and `/v1/events`.
struct HostController<Context: RequestContext> {
    let hypervisor: Hypervisor
    /// The media listener's address, as clients should use it (`HOST:PORT`), and its port.
    var media: (address: String, port: Int)?
    var limits = StreamLimits()

    func add(to group: RouterGroup<Context>) {
        group.get("host") { _, _ in
            var info = try hypervisor.hostInfo()
            info.mediaAddress = media?.address
            info.mediaPort = media?.port
            return try JSONResponse.make(info)
        }
        group.get("events") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "application/x-ndjson"
            let lease = try limits.events.acquire()
            let stream = hypervisor.events()
            return Response(
                status: .ok, headers: headers,
                body: ResponseBody { writer in
                    defer { withExtendedLifetime(lease) {} }
                    // Events, and every 2 s a heartbeat (nil): its empty write fails once the
                    // client has gone, which ends the stream and frees its slot even when no
                    // event comes.
                    let (items, sink) = AsyncStream<LifecycleEvent?>.makeStream()
                    let forward = Task {
                        for await event in stream { sink.yield(event) }
                        sink.finish()
                    }
                    let heartbeat = Task {
                        while !Task.isCancelled {
                            try? await Task.sleep(for: .seconds(2))
                            sink.yield(nil)
                        }
                    }
                    defer {
                        forward.cancel()
                        heartbeat.cancel()
                    }
                    for await item in items.cancelOnGracefulShutdown() {
                        guard let event = item else {
                            try await writer.write(ByteBuffer())
                            continue
                        }
                        var data = try JSONResponse.encoder.encode(event)
                        data.append(0x0A)
                        try await writer.write(ByteBuffer(bytes: data))
                    }
                    try await writer.finish(nil)
                })
        }
    }
}

/// `PUT /v1/domains/{name}/autostart`.
struct AutostartBody: Codable {
    var autostart: Bool
}

/// `PUT /v1/domains/{name}/next`: the definition that takes over at the guest's next power-off.
public struct NextDefinitionBody: Codable, Sendable {
    public var spec: DomainSpec
    public var start: Bool
}
