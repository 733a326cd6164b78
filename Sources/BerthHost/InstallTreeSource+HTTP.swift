import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// An install tree on an HTTP(S) mirror, as in the seed's `--location=http://…/install/6/x86_64/`.
/// The mirror is untrusted: every body has a size cap, enforced while it streams in.
public struct HTTPInstallTree: InstallTreeSource {
    public let location: String
    let base: URL
    /// Per-request timeout; a mirror that stalls must not hang an install.
    public var timeout: TimeInterval = 60

    public init(location: String) throws {
        let text = location.hasSuffix("/") ? location : location + "/"
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            url.host != nil
        else {
            throw InstallTreeError.cannotRead(path: location, reason: "not an http:// or https:// URL")
        }
        self.location = location
        self.base = url
    }

    func url(_ relativePath: String) throws -> URL {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        let escaped = relativePath.split(separator: "/", omittingEmptySubsequences: false).map {
            String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/;?#"))) ?? String($0)
        }.joined(separator: "/")
        guard let url = URL(string: escaped, relativeTo: base)?.absoluteURL else {
            throw InstallTreeError.unsafePath(path: relativePath, file: relativePath)
        }
        return url
    }

    public func fetch(_ relativePath: String, limit: Int) throws -> [UInt8]? {
        let target = try url(relativePath)
        var bytes: [UInt8] = []
        let found = try HTTPDownload.get(target, limit: limit, timeout: timeout, name: relativePath) { bytes += $0 }
        return found ? bytes : nil
    }

    public func exists(_ relativePath: String) throws -> Bool {
        try HTTPDownload.head(try url(relativePath), timeout: timeout, name: relativePath)
    }

    /// Streams the file into `destination` (created or truncated), reporting bytes so far.
    /// - Returns: false when the mirror answers 404.
    public func download(
        _ relativePath: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) throws -> Bool {
        guard let handle = FileHandleSink(path: destination) else {
            throw InstallTreeError.cannotRead(path: destination, reason: "cannot create the file")
        }
        defer { handle.close() }
        return try HTTPDownload.get(try url(relativePath), limit: limit, timeout: timeout, name: relativePath, progress: progress) {
            try handle.write($0)
        }
    }
}

/// A synchronous GET over URLSession, chunk by chunk, with a byte cap.
public enum HTTPDownload {
    /// - Returns: false on 404 (and 410); throws for other non-2xx statuses and transport errors.
    public static func get(
        _ url: URL, limit: Int, timeout: TimeInterval, name: String,
        progress: (@Sendable (Int64, Int64?) -> Void)? = nil, body: @escaping ([UInt8]) throws -> Void
    ) throws -> Bool {
        let delegate = StreamDelegate(limit: limit, progress: progress, body: body)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: url).resume()
        delegate.done.wait()
        let outcome = delegate.outcome()
        if let error = outcome.error { throw error }
        if outcome.tooLarge { throw InstallTreeError.fileTooLarge(path: name, limit: limit) }
        switch outcome.status {
        case 200..<300: return true
        case 404, 410: return false
        default:
            throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString) answered HTTP \(outcome.status)")
        }
    }

    public static func head(_ url: URL, timeout: TimeInterval, name: String) throws -> Bool {
        var request = URLRequest(url: url)
        request.httpMethod = "HEAD"
        request.timeoutInterval = timeout
        let box = ResultBox()
        let task = URLSession.shared.dataTask(with: request) { _, response, error in
            box.set(status: (response as? HTTPURLResponse)?.statusCode ?? 0, error: error)
        }
        task.resume()
        box.done.wait()
        let (status, error) = box.get()
        if let error {
            throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString): \(error.localizedDescription)")
        }
        if (200..<300).contains(status) { return true }
        if status == 404 || status == 410 { return false }
        throw InstallTreeError.cannotRead(path: name, reason: "\(url.absoluteString) answered HTTP \(status)")
    }

    // URLSession calls back on its own queue; state is guarded by a lock, so this is Sendable
    // in fact although the compiler cannot see it through NSLock.
    final class ResultBox: @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var status = 0
        private var error: Error?
        func set(status: Int, error: Error?) {
            lock.withLock {
                self.status = status
                self.error = error
            }
            done.signal()
        }
        func get() -> (Int, Error?) { lock.withLock { (status, error) } }
    }

    // The delegate's callbacks are serialized on the session's delegate queue; the lock guards
    // the hand-over to the waiting thread.
    final class StreamDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let done = DispatchSemaphore(value: 0)
        let limit: Int
        let progress: (@Sendable (Int64, Int64?) -> Void)?
        let body: ([UInt8]) throws -> Void
        private let lock = NSLock()
        private var status = 0
        private var expected: Int64?
        private var received: Int64 = 0
        private var error: Error?
        private var tooLarge = false

        init(limit: Int, progress: (@Sendable (Int64, Int64?) -> Void)?, body: @escaping ([UInt8]) throws -> Void) {
            self.limit = limit
            self.progress = progress
            self.body = body
        }

        func outcome() -> (status: Int, error: Error?, tooLarge: Bool) { lock.withLock { (status, error, tooLarge) } }

        func urlSession(
            _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
            completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
        ) {
            let http = response as? HTTPURLResponse
            let code = http?.statusCode ?? 0
            let length = response.expectedContentLength
            var allow = true
            lock.withLock {
                status = code
                expected = length >= 0 ? length : nil
                if (200..<300).contains(code), length > Int64(limit) {
                    tooLarge = true
                    allow = false
                }
                if !(200..<300).contains(code) { allow = false }
            }
            completionHandler(allow ? .allow : .cancel)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            var stop = false
            var total: Int64 = 0
            var total_expected: Int64?
            lock.withLock {
                received += Int64(data.count)
                total = received
                total_expected = expected
                if received > Int64(limit) {
                    tooLarge = true
                    stop = true
                }
            }
            if stop {
                dataTask.cancel()
                return
            }
            do {
                try body([UInt8](data))
            } catch {
                lock.withLock { self.error = error }
                dataTask.cancel()
                return
            }
            progress?(total, total_expected)
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            lock.withLock {
                if let error, self.error == nil, !tooLarge, (200..<300).contains(status) || status == 0 {
                    self.error = InstallTreeError.cannotRead(
                        path: task.originalRequest?.url?.absoluteString ?? "?", reason: error.localizedDescription)
                }
            }
            done.signal()
        }
    }
}

/// Appends to a file with write(2); closes once.
final class FileHandleSink {
    let fd: Int32
    init?(path: String) {
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        if fd < 0 { return nil }
    }
    func write(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Foundation.write(fd, base + done, bytes.count - done)
            }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw InstallTreeError.cannotRead(path: "download", reason: String(cString: strerror(errno))) }
            done += n
        }
    }
    func close() { _ = Foundation.close(fd) }
}
