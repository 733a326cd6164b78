import FoundationEssentials
import Glibc
import Synchronization

extension QMP {
    /// A QMP connection to one QEMU: commands with replies matched by id, events as a stream.
    ///
    /// Safe to share between tasks. Every error thrown is a `QMP.Error`. When the socket
    /// closes, pending commands fail with `.closed` and `events` finishes. Call `close()` when
    /// done: the reader thread keeps the client alive until the socket closes.
    public final class Client: Sendable {
        /// QEMU's greeting (its version).
        public let greeting: Greeting
        /// Asynchronous events in the order QEMU sent them. One consumer; the stream keeps the
        /// most recent 1024 events until it is read, and finishes when the socket closes.
        public let events: AsyncStream<Event>
        /// The socket this client talks to.
        public let path: String
        private let core: Core

        private init(core: Core, greeting: Greeting, path: String) {
            self.core = core
            self.greeting = greeting
            self.events = core.events
            self.path = path
        }

        /// Connects to a QMP socket, reads the greeting and leaves capabilities negotiation mode.
        ///
        /// - Parameter timeout: for the greeting and for `qmp_capabilities`. QEMU serves one QMP
        ///   client at a time per socket, so a greeting that never comes usually means another
        ///   client is connected.
        ///   - keepWaiting: asked each time `timeout` passes without a greeting; true waits
        ///     another `timeout` (a QEMU still setting up on a loaded host), up to `limit`.
        ///   - limit: the longest the greeting and `qmp_capabilities` may take in all.
        /// - Throws: `QMP.Error`.
        public static func connect(
            path: String, timeout: Duration = .seconds(10), keepWaiting: (@Sendable () -> Bool)? = nil,
            limit: Duration? = nil
        ) async throws -> Client {
            let connection = try UnixSocketConnection.connect(path: path)
            let core = Core(connection: connection)
            connection.startReading(
                onLine: { line in core.receive(line) },
                onEnd: { error in core.end(error) })
            let greeting: Greeting
            let started = ContinuousClock.now
            let limit = limit ?? timeout
            do {
                greeting = try await core.waitForGreeting(timeout: timeout) {
                    ContinuousClock.now - started < limit && keepWaiting?() == true
                }
            } catch {
                connection.shutdown()
                throw error
            }
            let client = Client(core: core, greeting: greeting, path: path)
            do {
                // QEMU answers from its main loop, which a loaded host may run late.
                let remaining = max(timeout, limit - (ContinuousClock.now - started))
                _ = try await client.execute("qmp_capabilities", timeout: remaining)
            } catch {
                client.close()
                throw error
            }
            return client
        }

        /// Runs a QMP command and returns its `return` value.
        ///
        /// - Parameters:
        ///   - command: such as `query-status`, `system_powerdown`, `stop`, `cont`, `quit`.
        ///   - arguments: the command's `arguments` object, if any.
        ///   - timeout: nil waits until QEMU answers or the socket closes.
        /// - Throws: `QMP.Error.qemu` when QEMU answers with an error; `.closed`, `.transport`,
        ///   `.timeout` or `.decoding` otherwise; `CancellationError` if the task is cancelled.
        @discardableResult
        public func execute(
            _ command: String, arguments: [String: Value]? = nil, timeout: Duration? = .seconds(30)
        ) async throws -> Value {
            try await core.execute(command, arguments: arguments, passing: nil, timeout: timeout)
        }

        /// Runs a QMP command with `descriptor` attached (SCM_RIGHTS), as `getfd` and `add-fd`
        /// need: QEMU keeps its own copy; the caller still owns and closes `descriptor`.
        ///
        /// - Throws: as `execute(_:arguments:timeout:)`.
        @discardableResult
        public func execute(
            _ command: String, arguments: [String: Value]? = nil, passing descriptor: Int32,
            timeout: Duration? = .seconds(30)
        ) async throws -> Value {
            try await core.execute(command, arguments: arguments, passing: descriptor, timeout: timeout)
        }

        /// Closes the socket. Pending commands fail with `.closed`; `events` finishes.
        public func close() { core.connection.shutdown() }

        /// Whether the socket has closed (QEMU exited, or `close()` was called).
        public var isClosed: Bool { core.isClosed }

        /// Returns once the socket has closed.
        public func waitUntilClosed() async { await core.waitUntilClosed() }
    }
}

extension QMP.Client {
    /// The shared state behind a client; the reader thread feeds it.
    fileprivate final class Core: Sendable {
        struct Pending {
            var command: String
            var continuation: CheckedContinuation<QMP.Value, any Error>
            var timer: Task<Void, Never>?
        }

        struct State {
            var nextID = 1
            var pending: [Int: Pending] = [:]
            var greeting: Result<QMP.Greeting, QMP.Error>?
            var greetingWaiter: CheckedContinuation<QMP.Greeting, any Error>?
            var ended: QMP.Error?
            var closeWaiters: [CheckedContinuation<Void, Never>] = []
        }

        let connection: UnixSocketConnection
        let events: AsyncStream<QMP.Event>
        private let eventSink: AsyncStream<QMP.Event>.Continuation
        private let state = Mutex(State())

        init(connection: UnixSocketConnection) {
            self.connection = connection
            (events, eventSink) = AsyncStream.makeStream(of: QMP.Event.self, bufferingPolicy: .bufferingNewest(1024))
        }

        var isClosed: Bool { state.withLock { $0.ended != nil } }

        // MARK: Reader side

        func receive(_ line: [UInt8]) {
            let message: QMP.Message
            do {
                message = try QMP.decode(line: line)
            } catch {
                // Replies come in command order, so an undecodable line answers the oldest command.
                fail(id: state.withLock { $0.pending.keys.min() }, with: error)
                return
            }
            switch message {
            case .greeting(let greeting):
                let waiter = state.withLock { s in
                    if s.greeting == nil { s.greeting = .success(greeting) }
                    defer { s.greetingWaiter = nil }
                    return s.greetingWaiter
                }
                waiter?.resume(returning: greeting)
            case .event(let event):
                eventSink.yield(event)
            case .reply(let id, let result):
                guard let pending = take(id: id) else { return }
                pending.timer?.cancel()
                pending.continuation.resume(returning: result)
            case .error(let id, let cls, let desc):
                guard let pending = take(id: id) else { return }
                pending.timer?.cancel()
                pending.continuation.resume(
                    throwing: QMP.Error.qemu(
                        command: pending.command, errorClass: cls, description: desc,
                        raw: String(decoding: line, as: UTF8.self)))
            }
        }

        /// The pending command a reply answers: its id, or (QEMU omits the id when it could not
        /// parse the command) the oldest one.
        private func take(id: QMP.Value?) -> Pending? {
            state.withLock { s in
                let key = id?.int.map(Int.init) ?? s.pending.keys.min()
                guard let key else { return nil }
                return s.pending.removeValue(forKey: key)
            }
        }

        func end(_ error: QMP.Error?) {
            let (pending, greetingWaiter, closeWaiters) = state.withLock { s in
                s.ended = error ?? .closed
                if s.greeting == nil { s.greeting = .failure(error ?? .closed) }
                defer {
                    s.pending = [:]
                    s.greetingWaiter = nil
                    s.closeWaiters = []
                }
                return (s.pending.values, s.greetingWaiter, s.closeWaiters)
            }
            for p in pending {
                p.timer?.cancel()
                p.continuation.resume(throwing: error ?? QMP.Error.closed)
            }
            greetingWaiter?.resume(throwing: error ?? QMP.Error.closed)
            eventSink.finish()
            for waiter in closeWaiters { waiter.resume() }
        }

        // MARK: Caller side

        func waitForGreeting(timeout: Duration, keepWaiting: @escaping @Sendable () -> Bool = { false }) async throws
            -> QMP.Greeting
        {
            let timer = Task { [self] in
                repeat {
                    try? await Task.sleep(for: timeout)
                    guard !Task.isCancelled else { return }
                } while state.withLock({ $0.greeting == nil }) && keepWaiting()
                let waiter = state.withLock { s -> CheckedContinuation<QMP.Greeting, any Error>? in
                    guard s.greeting == nil else { return nil }
                    s.greeting = .failure(Self.noGreeting(timeout))
                    defer { s.greetingWaiter = nil }
                    return s.greetingWaiter
                }
                waiter?.resume(throwing: Self.noGreeting(timeout))
            }
            defer { timer.cancel() }
            return try await withCheckedThrowingContinuation { continuation in
                let ready = state.withLock { s -> Result<QMP.Greeting, QMP.Error>? in
                    if let result = s.greeting { return result }
                    s.greetingWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
            }
        }

        private static func noGreeting(_ timeout: Duration) -> QMP.Error {
            .transport(
                "no QMP greeting within \(timeout.seconds) s: another client may hold the QMP socket, or QEMU is hung")
        }

        func execute(
            _ command: String, arguments: [String: QMP.Value]?, passing descriptor: Int32?, timeout: Duration?
        ) async throws -> QMP.Value {
            let id = state.withLock { s in
                defer { s.nextID += 1 }
                return s.nextID
            }
            var request: [String: QMP.Value] = ["execute": .string(command), "id": .int(Int64(id))]
            if let arguments { request["arguments"] = .object(arguments) }
            let line = Array((QMP.Value.object(request).json + "\n").utf8)

            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    let timer = timeout.map { timeout in
                        Task { [self] in
                            try? await Task.sleep(for: timeout)
                            guard !Task.isCancelled else { return }
                            fail(id: id, with: QMP.Error.timeout(command: command, seconds: timeout.seconds))
                        }
                    }
                    let ended = state.withLock { s -> QMP.Error? in
                        if let ended = s.ended { return ended }
                        s.pending[id] = Pending(command: command, continuation: continuation, timer: timer)
                        return nil
                    }
                    if let ended {
                        timer?.cancel()
                        continuation.resume(throwing: ended)
                        return
                    }
                    do {
                        if let descriptor {
                            try connection.send(line, passing: descriptor)
                        } else {
                            try connection.send(line)
                        }
                    } catch {
                        fail(id: id, with: error)
                    }
                    if Task.isCancelled { fail(id: id, with: CancellationError()) }
                }
            } onCancel: {
                fail(id: id, with: CancellationError())
            }
        }

        private func fail(id: Int?, with error: any Error) {
            guard let id, let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
            pending.timer?.cancel()
            pending.continuation.resume(throwing: error)
        }

        func waitUntilClosed() async {
            await withCheckedContinuation { continuation in
                let done = state.withLock { s in
                    if s.ended != nil { return true }
                    s.closeWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }
    }
}

extension Duration {
    /// Seconds as a Double, for messages.
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
