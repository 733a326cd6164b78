#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs `body` on a new detached OS thread named `name` (Linux keeps 15 bytes of it).
/// Berth's one way to get a thread of its own: blocking waits (a child's exit, a socket's
/// reads, file copies) that must not hold a thread of Swift's cooperative pool.
public func startThread(named name: String, _ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
    let job = Unmanaged.passRetained(ThreadJob(name: name, body: body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let result = pthread_create(
        &thread, &attributes,
        { raw in
            guard let raw else { return nil }
            let job = Unmanaged<ThreadJob>.fromOpaque(raw).takeRetainedValue()
            // Linux keeps 15 bytes of a name and refuses a longer one.
            _ = String(decoding: job.name.utf8.prefix(15), as: UTF8.self).withCString { setThreadName?(pthread_self(), $0) }
            job.body()
            return nil
        }, job)
    if result != 0 {
        Unmanaged<ThreadJob>.fromOpaque(job).release()
        throw SystemCallError(errno: result)
    }
}

private typealias SetThreadName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32

/// glibc's `pthread_setname_np`, which Swift's Glibc module does not import: looked up once.
private let setThreadName: SetThreadName? = {
    guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "pthread_setname_np") else { return nil }
    return unsafeBitCast(symbol, to: SetThreadName.self)
}()

private final class ThreadJob: Sendable {
    let name: String
    let body: @Sendable () -> Void

    init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}
