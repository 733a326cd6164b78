import Foundation

extension InstallTreeSource {
    /// Copies a file of the tree (an installer kernel or initrd) to `destination`, capped at
    /// `limit` bytes, reporting bytes so far. Blocking: berthd runs it on a thread of its own.
    /// - Throws: `InstallTreeError` when the file is missing, too large or unreadable.
    public func copy(
        _ file: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) throws {
        switch self {
        case let http as HTTPInstallTree:
            guard try http.download(file, to: destination, limit: limit, progress: progress) else {
                throw InstallTreeError.cannotRead(path: file, reason: "the mirror answered 404")
            }
        case let iso as ISOInstallTree:
            let open = try iso.open(file)
            guard open.size <= UInt64(limit) else { throw InstallTreeError.fileTooLarge(path: file, limit: limit) }
            guard let sink = FileHandleSink(path: destination) else {
                throw InstallTreeError.cannotRead(path: destination, reason: "cannot create it")
            }
            defer { sink.close() }
            var offset: UInt64 = 0
            while offset < open.size {
                let chunk = try open.read(at: offset, count: 4 << 20)
                if chunk.isEmpty { break }
                try sink.write(chunk)
                offset += UInt64(chunk.count)
                progress(Int64(offset), Int64(open.size))
            }
        default:
            guard let bytes = try fetch(file, limit: limit) else {
                throw InstallTreeError.cannotRead(path: file, reason: "it is missing")
            }
            guard let sink = FileHandleSink(path: destination) else {
                throw InstallTreeError.cannotRead(path: destination, reason: "cannot create it")
            }
            defer { sink.close() }
            try sink.write(bytes)
            progress(Int64(bytes.count), Int64(bytes.count))
        }
    }
}
