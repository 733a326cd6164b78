import BerthDisk
import Testing

@Suite
struct VolumesTests {
    static func which(_ volume: Volumes.Volume) throws -> String? {
        guard let fs = volume.filesystem else { return nil }
        return String(decoding: try fs.read("/which.txt", limit: 100), as: UTF8.self)
    }

    @Test("MBR: first partition first, then the logical partitions")
    func mbr() throws {
        let (volumes, problems) = try Volumes.discover(DiskFixture.image("mbr.img"))
        #expect(problems.isEmpty)
        #expect(volumes.map(\.location) == [.partition(number: 1), .partition(number: 5), .partition(number: 6)])
        #expect(try volumes.map(Self.which) == ["mbr-p1\n", "mbr-p5\n", "mbr-p6\n"])
        #expect(volumes.map { $0.filesystem?.kind } == ["ext4", "ext2", "ext3"])
    }

    @Test("GPT: a partition without a filesystem is listed with the reason")
    func gpt() throws {
        let (volumes, _) = try Volumes.discover(DiskFixture.image("gpt.img"))
        #expect(volumes.map(\.location) == [.partition(number: 1), .partition(number: 2), .partition(number: 3)])
        #expect(volumes[0].filesystem == nil)
        #expect(volumes[0].failure == "no known filesystem")
        #expect(try volumes.map(Self.which) == [nil, "gpt-p2\n", "gpt-p3\n"])
    }

    @Test("no table: the whole disk; an explicit offset: the filesystem there")
    func wholeDiskAndOffset() throws {
        let (whole, _) = try Volumes.discover(DiskFixture.image("ext4.img"))
        #expect(whole.map(\.location) == [.wholeDisk])
        #expect(try whole.map(Self.which) == ["ext4\n"])
        let (at, _) = try Volumes.discover(DiskFixture.image("mbr.img"), offset: 45056 * 512)
        #expect(at.map(\.location) == [.offset(45056 * 512)])
        #expect(try at.map(Self.which) == ["mbr-p5\n"])
        #expect(throws: ByteSourceError.self) { try Volumes.discover(DiskFixture.image("mbr.img"), offset: 1 << 40) }
    }

    @Test("LVM: visible logical volumes stand in for the PV partition")
    func lvm() throws {
        let (volumes, problems) = try Volumes.discover(DiskFixture.image("lvm.img"))
        #expect(problems.isEmpty)
        #expect(
            volumes.map(\.location) == [
                .partition(number: 1), .logicalVolume(partition: 2, group: "vgberth", name: "root"),
                .logicalVolume(partition: 2, group: "vgberth", name: "data"),
            ])
        #expect(try volumes.map(Self.which) == ["lvm-boot\n", "lvm-root\n", "lvm-data\n"])
        // One PV of a two-PV striped VG: nothing readable, and the reason is reported.
        let (alone, why) = try Volumes.discover(DiskFixture.image("pv-a.img"))
        #expect(alone.isEmpty)
        #expect(why.count == 1 && why[0].contains("striped"))
    }

    @Test("the probe table tries ext first and opens what it recognizes")
    func probes() throws {
        #expect(Volumes.probes.first?.kind == "ext")
        #expect(try Volumes.open(DiskFixture.image("ext3.img"))?.kind == "ext3")
        #expect(try Volumes.open(MemorySource([UInt8](repeating: 0, count: 8192))) == nil)
    }
}
