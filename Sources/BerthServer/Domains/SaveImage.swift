import BerthModel
import BerthPOSIX
import BerthQEMU
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// A saved guest on disk: Berth's header, then QEMU's migration stream.
///
/// ```
/// 0   "BERTHSAV"  magic
/// 8   u32 LE      format version (1)
/// 12  u32 LE      header JSON length (at most 1 MiB)
/// 16  u64 LE      stream length; 0 until the save completed
/// 24  u64 LE      FNV-1a 64 of the header JSON
/// 32  JSON        `SaveImage.Header`: the domain, its whole definition, the state to resume into
/// …   zeros to the next 4 KiB boundary, where QEMU's stream starts
/// ```
///
/// The definition in the header is what restore compares with the catalog: QEMU can only load
/// a stream into the same machine (devices, memory size), so a changed definition is refused
/// before any QEMU starts. The stream length is written last, after the stream is on disk,
/// so a save that died half-way is never mistaken for a whole one.
enum SaveImage {
    static let magic = Array("BERTHSAV".utf8)
    static let version: UInt32 = 1
    static let maxHeaderJSON = 1 << 20
    static let alignment = 4096

    struct Header: Codable, Sendable {
        var domain: String
        var uuid: UUID
        var spec: DomainSpec
        var state: SavedRunState
        var savedAt: Date
        var qemuVersion: String?
    }

    /// A file being written: QEMU writes the stream through `descriptor`; `finish` makes it whole
    /// and gives it its name; `abandon` removes it.
    final class Writer {
        let descriptor: Int32
        let path: String
        let temporaryPath: String
        let streamOffset: Int

        fileprivate init(descriptor: Int32, path: String, temporaryPath: String, streamOffset: Int) {
            self.descriptor = descriptor
            self.path = path
            self.temporaryPath = temporaryPath
            self.streamOffset = streamOffset
        }

        /// Records the stream's length, syncs the file and links it into place (`replace`: over
        /// an existing file, for managed saves; otherwise an existing file is an error).
        /// - Returns: the stream's length.
        func finish(replace: Bool) throws -> UInt64 {
            defer { close(descriptor) }
            let end = lseek(descriptor, 0, SEEK_END)
            guard end >= streamOffset else { throw SaveImage.ioError("measure", path) }
            let length = UInt64(end) - UInt64(streamOffset)
            guard length > 0 else {
                throw BerthError(.unavailable, "QEMU wrote no state to \(path).", remedy: "See the guest's QEMU log.")
            }
            var field = SaveImage.littleEndian(length)
            guard pwrite(descriptor, &field, 8, 16) == 8, fsync(descriptor) == 0 else {
                throw SaveImage.ioError("write", path)
            }
            if replace {
                guard rename(temporaryPath, path) == 0 else { throw SaveImage.ioError("rename", path) }
            } else {
                guard link(temporaryPath, path) == 0 else {
                    let code = errno
                    if code == EEXIST { throw SaveImage.exists(path) }
                    throw SaveImage.ioError("link", path, code)
                }
                unlink(temporaryPath)
            }
            return length
        }

        func abandon() {
            close(descriptor)
            unlink(temporaryPath)
        }
    }

    /// Starts a save file: checks `path` is free and its directory writable, writes the header
    /// into a hidden temporary file beside it, and leaves the descriptor at the stream's offset.
    static func create(at path: String, header: Header, replace: Bool) throws -> Writer {
        guard path.hasPrefix("/") else {
            throw BerthError(
                .invalidArgument, "The save file '\(path)' is not an absolute path.",
                remedy: "Give the full path on berthd's host (the CLI does this for you).")
        }
        if !replace, access(path, F_OK) == 0 { throw exists(path) }
        let directory = PathName.directory(of: path)
        let base = PathName.lastComponent(of: path)
        let temporary = "\(directory)/.\(base).berth-\(UUID().uuidString.prefix(8).lowercased())"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let code = errno
            throw BerthError(
                code == ENOENT ? .notFound : .invalidArgument,
                "Cannot write a save file in \(directory): \(String(cString: strerror(code))).",
                remedy: code == ENOENT
                    ? "Create the directory \(directory) first."
                    : "Choose a directory berthd's user can write (berthd runs as \(getuid() == 0 ? "root" : "uid \(getuid())")).")
        }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            encoder.dateEncodingStrategy = .iso8601
            let json = Array(try encoder.encode(header))
            guard json.count <= maxHeaderJSON else {
                throw BerthError(.invalidArgument, "The domain's definition is too large to save (over 1 MiB).")
            }
            var bytes = magic
            bytes += littleEndianBytes(UInt32(version))
            bytes += littleEndianBytes(UInt32(json.count))
            bytes += littleEndianBytes(UInt64(0))
            bytes += littleEndianBytes(fnv1a(json))
            bytes += json
            let padded = (bytes.count + alignment - 1) / alignment * alignment
            bytes += [UInt8](repeating: 0, count: padded - bytes.count)
            try writeAll(fd, bytes, path: temporary)
            return Writer(descriptor: fd, path: path, temporaryPath: temporary, streamOffset: padded)
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
    }

    /// An opened save file: its header, and a descriptor at the stream's start.
    struct Opened: Sendable {
        var header: Header
        var descriptor: Int32
        var streamLength: UInt64
    }

    /// Opens and checks a save file (magic, version, checksum, completeness, size).
    static func open(_ path: String) throws -> Opened {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            throw BerthError(
                code == ENOENT ? .notFound : .invalidArgument,
                "Cannot open the save file \(path): \(String(cString: strerror(code))).",
                remedy: code == ENOENT ? "Give the path of a file written by 'berth save' on berthd's host." : "Make it readable by berthd's user.")
        }
        do {
            var fixed = [UInt8](repeating: 0, count: 32)
            guard pread(fd, &fixed, 32, 0) == 32, Array(fixed[0..<8]) == magic else { throw notASave(path) }
            let version = UInt32(littleEndian: fixed, at: 8)
            guard version == Self.version else {
                throw BerthError(
                    .invalidArgument, "\(path) is a Berth save file of format \(version), which this berthd does not read.",
                    remedy: "Restore it with the Berth version that wrote it.")
            }
            let jsonLength = Int(UInt32(littleEndian: fixed, at: 12))
            let streamLength = UInt64(littleEndian: fixed, at: 16)
            let checksum = UInt64(littleEndian: fixed, at: 24)
            guard jsonLength > 0, jsonLength <= maxHeaderJSON else { throw notASave(path) }
            var json = [UInt8](repeating: 0, count: jsonLength)
            guard pread(fd, &json, jsonLength, 32) == jsonLength, fnv1a(json) == checksum else {
                throw BerthError(
                    .invalidArgument, "The header of \(path) is damaged (its checksum does not match).",
                    remedy: "The file cannot be restored; start the domain afresh with 'berth start'.")
            }
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let header: Header
            do {
                header = try decoder.decode(Header.self, from: Data(json))
            } catch {
                throw notASave(path)
            }
            let streamOffset = (32 + jsonLength + alignment - 1) / alignment * alignment
            var status = stat()
            guard fstat(fd, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { throw notASave(path) }
            guard streamLength > 0, UInt64(status.st_size) == UInt64(streamOffset) + streamLength else {
                throw BerthError(
                    .invalidArgument,
                    streamLength == 0
                        ? "\(path) is an unfinished save of '\(header.domain)' (the save did not complete)."
                        : "\(path) is truncated: it should hold \(streamLength) bytes of guest state after its header.",
                    remedy: "It cannot be restored; remove it and start '\(header.domain)' with 'berth start'.")
            }
            guard lseek(fd, off_t(streamOffset), SEEK_SET) == off_t(streamOffset) else { throw ioError("seek", path) }
            return Opened(header: header, descriptor: fd, streamLength: streamLength)
        } catch {
            close(fd)
            throw error
        }
    }

    /// The fields of two definitions that differ in ways that matter to a saved machine (its
    /// autostart flag, notes and description do not).
    static func differences(saved: DomainSpec, current: DomainSpec) -> [String] {
        // Each top-level field as a JSON value (QMP's JSON type serves any JSON here).
        func normalized(_ spec: DomainSpec) -> [String: QMP.Value] {
            var spec = spec
            spec.autostart = false
            spec.notes = []
            spec.description = nil
            guard let data = try? JSONEncoder().encode(spec),
                let object = try? JSONDecoder().decode([String: QMP.Value].self, from: data)
            else { return [:] }
            return object
        }
        let a = normalized(saved)
        let b = normalized(current)
        var keys = Swift.Set<String>()
        keys.formUnion(a.keys)
        keys.formUnion(b.keys)
        return keys.sorted().filter { key in
            switch (a[key], b[key]) {
            case (nil, nil): false
            case (let x?, let y?): x != y
            default: true
            }
        }
    }

    // MARK: Helpers

    static func fnv1a(_ bytes: [UInt8]) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    static func littleEndian(_ value: UInt64) -> UInt64 { value.littleEndian }

    static func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        do { try BerthPOSIX.writeAll(fd, bytes) } catch { throw ioError("write", path, error.errno) }
    }

    static func exists(_ path: String) -> BerthError {
        BerthError(
            .alreadyExists, "The save file \(path) already exists.",
            remedy: "Choose another file name, or remove the old file first.")
    }

    static func notASave(_ path: String) -> BerthError {
        BerthError(
            .invalidArgument, "\(path) is not a Berth save file.",
            remedy: "Give a file written by 'berth save'.")
    }

    static func ioError(_ what: String, _ path: String, _ code: Int32 = errno) -> BerthError {
        BerthError(
            .unavailable, "Cannot \(what) \(path): \(String(cString: strerror(code))).",
            remedy: "Check the file system has room and berthd's user may write there.")
    }
}

extension FixedWidthInteger {
    /// Decodes a little-endian integer at `offset` of `bytes` (checked by the caller).
    init(littleEndian bytes: [UInt8], at offset: Int) {
        var value: Self = 0
        for i in 0..<(Self.bitWidth / 8) { value |= Self(bytes[offset + i]) << (8 * i) }
        self = value
    }
}
