import Foundation
import Synchronization
import Testing

@testable import BerthDisk

/// Logs every read so the robustness tests know where an image's metadata lies.
final class ReadLogSource: ByteSource {
    let base: any ByteSource
    let reads = Mutex<[(offset: UInt64, count: Int)]>([])
    var size: UInt64 { base.size }
    init(_ base: any ByteSource) { self.base = base }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        reads.withLock { $0.append((offset, count)) }
        return try base.read(at: offset, count: count)
    }
}

/// Another source with some bytes XORed: corruption without copying a 320 MB image.
struct FlippedSource: ByteSource {
    let base: any ByteSource
    let flips: [UInt64: UInt8]
    var size: UInt64 { base.size }
    func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        var bytes = try base.read(at: offset, count: count)
        for (at, mask) in flips where at >= offset && at < offset + UInt64(count) { bytes[Int(at - offset)] ^= mask }
        return bytes
    }
}

/// A small deterministic generator, so a failing seed can be replayed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum FSRobustness {
    /// What the bootloader does with a filesystem, bounded: list directories breadth-first,
    /// stat entries, read small files. Returns how many operations succeeded.
    @discardableResult
    static func exercise(_ fs: any FileSystem, maxOperations: Int = 400) -> Int {
        var queue = ["/"]
        var operations = 0
        var succeeded = 0
        while let dir = queue.first, operations < maxOperations {
            queue.removeFirst()
            operations += 1
            guard let names = try? fs.list(dir) else { continue }
            succeeded += 1
            for name in names.prefix(12) where operations < maxOperations {
                let path = (dir == "/" ? "" : dir) + "/" + name
                operations += 1
                guard let info = try? fs.stat(path) else { continue }
                succeeded += 1
                if info.kind == .directory, queue.count < 64 { queue.append(path) }
                if info.kind == .file, (try? fs.read(path, limit: 2 << 20)) != nil { succeeded += 1 }
            }
        }
        _ = try? fs.read("/boot/grub/grub.cfg", limit: 1 << 16)
        _ = try? fs.stat("/loop-a")
        return succeeded
    }

    static func open(_ name: String, _ source: any ByteSource) throws -> any FileSystem {
        if name.contains("xfs") { return try XFSFileSystem(source: source) }
        if name.contains("fat") { return try FATFileSystem(source: source) }
        return try ISO9660FileSystem(source: source)
    }

    /// Metadata ranges: the small reads made while exercising the intact image.
    static func metadata(_ name: String) throws -> (FileSource, [(offset: UInt64, count: Int)]) {
        let image = try FSReadFixtures.image(name)
        let recorder = ReadLogSource(image)
        let fs = try open(name, recorder)
        exercise(fs)
        let ranges = recorder.reads.withLock { $0 }.filter { $0.count <= 65536 && $0.count > 0 }
        return (image, ranges)
    }
}

@Suite struct XFSFATISO9660RobustnessTests {
    static let images = [
        "fsread-xfs-v4.img", "fsread-xfs-v5.img", "fsread-fat12.img", "fsread-fat16.img", "fsread-fat32.img",
        "fsread-rr-joliet.iso", "fsread-joliet.iso", "fsread-plain.iso",
    ]

    @Test(arguments: images) func intactImageExercisesCleanly(image: String) throws {
        let fs = try FSRobustness.open(image, try FSReadFixtures.image(image))
        #expect(FSRobustness.exercise(fs) > 50)
    }

    @Test(arguments: images) func truncatedImagesFailCleanly(image: String) throws {
        let (source, ranges) = try FSRobustness.metadata(image)
        var rng = SplitMix64(state: 0x7472_756E_6361_7465)
        var cuts: [UInt64] = [0, 1, 511, 2048, 16 * 2048 + 100]
        for _ in 0..<24 {
            let r = ranges[Int(rng.next() % UInt64(ranges.count))]
            cuts.append(r.offset + rng.next() % UInt64(max(1, r.count)))
        }
        var opened = 0
        for cut in cuts where cut < source.size {
            let truncated = try SliceSource(base: source, offset: 0, length: cut)
            guard let fs = try? FSRobustness.open(image, truncated) else { continue }
            opened += 1
            FSRobustness.exercise(fs, maxOperations: 150)
        }
        #expect(opened > 0, "no truncation point past the superblock")
    }

    @Test(arguments: images) func randomMetadataFlipsFailCleanly(image: String) throws {
        let (source, ranges) = try FSRobustness.metadata(image)
        #expect(ranges.count > 3)
        var rng = SplitMix64(state: 0xB17F_11B5 ^ UInt64(image.utf8.count))
        let deadline = ContinuousClock.now + .seconds(6)
        var iterations = 0
        var survived = 0
        while iterations < 300, ContinuousClock.now < deadline {
            iterations += 1
            var flips: [UInt64: UInt8] = [:]
            for _ in 0..<(1 + rng.next() % 6) {
                let r = ranges[Int(rng.next() % UInt64(ranges.count))]
                flips[r.offset + rng.next() % UInt64(r.count), default: 0] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            }
            guard let fs = try? FSRobustness.open(image, FlippedSource(base: source, flips: flips)) else { continue }
            if FSRobustness.exercise(fs, maxOperations: 150) > 0 { survived += 1 }
        }
        print("\(image): \(iterations) corrupted images, \(survived) still readable in part, none crashed")
        #expect(iterations >= 10)
        #expect(survived > 0, "every corrupted image failed outright; the flips may not be hitting metadata only")
    }
}

/// Hand-aimed corruptions of the structures that can form loops.
@Suite struct XFSFATISO9660LoopTests {
    @Test func fatChainLoopIsDetected() throws {
        let image = try FSReadFixtures.image("fsread-fat16.img")
        let fs = try FATFileSystem(source: image)
        guard case .entry(let dir) = try fs.resolve("/leafdir") else { throw FSReadFixtures.FixtureError(message: "leafdir") }
        let chain = try fs.chain(from: dir.cluster, limit: 1000)
        #expect(chain.count > 2)
        // Point the second cluster's FAT entry back at the first.
        let entry = fs.fatOffset + UInt64(chain[1]) * 2
        let old = try image.read(at: entry, count: 2)
        let target = [UInt8(dir.cluster & 0xFF), UInt8(dir.cluster >> 8)]
        let looped = try FATFileSystem(source: FlippedSource(base: image, flips: [entry: old[0] ^ target[0], entry + 1: old[1] ^ target[1]]))
        #expect(throws: FATFileSystem.Error.chainLoop(start: dir.cluster, cluster: dir.cluster)) { try looped.list("/leafdir") }
        #expect(throws: FATFileSystem.Error.chainLoop(start: dir.cluster, cluster: dir.cluster)) { try looped.stat("/leafdir/nothing") }
    }

    @Test(arguments: ["fsread-xfs-v4.img", "fsread-xfs-v5.img"]) func xfsBtreePointerUpTheTreeIsRejected(image: String) throws {
        let source = try FSReadFixtures.image(image)
        let fs = try XFSFileSystem(source: source)
        let dir = try fs.resolve("/nodedir")
        #expect(dir.format == .btree)
        // Make the inode root claim level 2: its child (a level-0 leaf) then no longer fits,
        // the same check that stops a child pointing back at an ancestor.
        let rootLevelOffset = dir.offset + UInt64(fs.sb.isV5 ? 176 : 100)
        let flips: [UInt64: UInt8] = [rootLevelOffset + 1: 0x01 ^ 0x02]
        let corrupt = try XFSFileSystem(source: FlippedSource(base: source, flips: flips))
        #expect(throws: XFSFileSystem.Error.self) { try corrupt.list("/nodedir") }
        do {
            _ = try corrupt.list("/nodedir")
        } catch let error as XFSFileSystem.Error {
            #expect(error.description.contains("level 0, expected 1"))
        }
    }

    @Test func isoContinuationLoopIsCapped() throws {
        // A Rock Ridge record whose CE continuation area points at itself, forever.
        var image = [UInt8](repeating: 0, count: 24 * 2048)
        func put(_ at: Int, _ bytes: [UInt8]) { image.replaceSubrange(at..<at + bytes.count, with: bytes) }
        func both32(_ v: UInt32) -> [UInt8] {
            let le = [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]
            return le + le.reversed()
        }
        func record(lba: UInt32, length: UInt32, flags: UInt8, name: [UInt8], su: [UInt8] = []) -> [UInt8] {
            var r = [UInt8](repeating: 0, count: 33 + name.count + (name.count % 2 == 0 ? 1 : 0))
            r.replaceSubrange(2..<10, with: both32(lba))
            r.replaceSubrange(10..<18, with: both32(length))
            r[25] = flags
            r[32] = UInt8(name.count)
            r.replaceSubrange(33..<33 + name.count, with: name)
            r += su
            r[0] = UInt8(r.count)
            return r
        }
        let sp: [UInt8] = Array("SP".utf8) + [7, 1, 0xBE, 0xEF, 0]
        let ce: [UInt8] = Array("CE".utf8) + [28, 1] + both32(20) + both32(0) + both32(28)
        put(16 * 2048, [1] + Array("CD001".utf8) + [1])
        put(16 * 2048 + 128, [0, 8, 8, 0])
        put(16 * 2048 + 156, record(lba: 18, length: 2048, flags: 2, name: [0]))
        put(17 * 2048, [255] + Array("CD001".utf8) + [1])
        put(
            18 * 2048,
            record(lba: 18, length: 2048, flags: 2, name: [0], su: sp) + record(lba: 18, length: 2048, flags: 2, name: [1])
                + record(lba: 21, length: 5, flags: 0, name: Array("A;1".utf8), su: ce))
        put(20 * 2048, ce)
        let fs = try ISO9660FileSystem(source: MemorySource(image))
        #expect(fs.names == .rockRidge)
        #expect(throws: ISO9660FileSystem.Error.self) { try fs.list("/") }
    }
}
