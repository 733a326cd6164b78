import BerthDisk
import Glibc
import Testing

/// Hostile-image robustness in the regular suite: byte flips aimed at the structures a clean
/// walk reads, and truncations. Every iteration must end in a result or an error — a crash
/// would take the test process down, a hang would blow the time budget.
@Suite
struct DiskRobustnessTests {
    struct Outcome {
        var errors = 0
        var files = 0
    }

    /// What a bootloader does with a disk: discover volumes, list directories, stat and read files.
    static func exercise(_ disk: any ByteSource) -> Outcome {
        var outcome = Outcome()
        let found: (volumes: [Volumes.Volume], problems: [String])
        do { found = try Volumes.discover(disk) } catch {
            outcome.errors += 1
            return outcome
        }
        outcome.errors += found.problems.count
        for volume in found.volumes {
            guard let fs = volume.filesystem else {
                outcome.errors += 1
                continue
            }
            var budget = 60
            walk(fs, "/", depth: 0, budget: &budget, outcome: &outcome)
        }
        return outcome
    }

    static func walk(_ fs: any FileSystem, _ path: String, depth: Int, budget: inout Int, outcome: inout Outcome) {
        guard depth < 12 else { return }
        let names: [String]
        do { names = try fs.list(path) } catch {
            outcome.errors += 1
            return
        }
        for name in names.prefix(12) {
            budget -= 1
            guard budget > 0 else { return }
            let child = path == "/" ? "/" + name : path + "/" + name
            do {
                switch try fs.stat(child).kind {
                case .directory: walk(fs, child, depth: depth + 1, budget: &budget, outcome: &outcome)
                case .file:
                    _ = try fs.read(child, limit: 64 << 10)
                    outcome.files += 1
                default: break
                }
            } catch {
                outcome.errors += 1
            }
        }
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static let images = ["ext2.img", "ext4.img", "ext4-noextent.img", "ext4-inline.img", "mbr.img", "gpt.img", "lvm.img"]

    @Test("random byte flips over every structure read", arguments: images.enumerated().map { ($0.offset, $0.element) })
    func byteFlips(seed: Int, image: String) throws {
        try DiskFixture.require(image)
        let recording = RecordingSource(try DiskFixture.image(image))
        let clean = Self.exercise(recording)
        #expect(clean.files > 10, "the clean image must be readable")
        let reads = recording.reads.filter { $0.count > 0 }
        var rng = SeededRandom(seed: 0xB0_0710 + UInt64(seed))
        var outcomes = Outcome()
        var changed = 0
        var slowest = 0.0
        let start = Self.now()
        for _ in 0..<300 {
            var patched = PatchedSource(recording.base)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let read = reads[Int.random(in: 0..<reads.count, using: &rng)]
                // Most reads are structures; bias flips toward their first 256 bytes, where headers live.
                let span = Bool.random(using: &rng) ? min(read.count, 256) : read.count
                let at = read.offset + UInt64(Int.random(in: 0..<span, using: &rng))
                patched.patches[at] = UInt8.random(in: 0...255, using: &rng)
            }
            let t = Self.now()
            let o = Self.exercise(patched)
            slowest = max(slowest, Self.now() - t)
            outcomes.errors += o.errors
            outcomes.files += o.files
            if o.errors != clean.errors || o.files != clean.files { changed += 1 }
        }
        let total = Self.now() - start
        print(
            "\(image): 300 flips, \(changed) changed the outcome, \(outcomes.errors) errors, \(outcomes.files) files read, slowest \(slowest)s, total \(total)s"
        )
        #expect(changed > 0, "flips in structures must change what is read")
        #expect(slowest < 10, "one corrupt image must not take long")
    }

    @Test("truncated images", arguments: images.enumerated().map { ($0.offset, $0.element) })
    func truncation(seed: Int, image: String) throws {
        try DiskFixture.require(image)
        let recording = RecordingSource(try DiskFixture.image(image))
        let clean = Self.exercise(recording)
        var rng = SeededRandom(seed: 0x7E_0000 + UInt64(seed))
        var changed = 0
        for i in 0..<40 {
            // Cut inside something that was read, or anywhere.
            let size: UInt64
            if i % 2 == 0, let read = recording.reads.randomElement(using: &rng) {
                size = read.offset + UInt64(Int.random(in: 0...read.count, using: &rng))
            } else {
                size = UInt64.random(in: 0...recording.size, using: &rng)
            }
            let o = Self.exercise(PatchedSource(recording.base, size: size))
            if o.errors != clean.errors || o.files != clean.files { changed += 1 }
        }
        #expect(changed > 0)
    }
}

extension FileSource {
    static func exists(_ path: String) -> Bool { access(path, R_OK) == 0 }
}
