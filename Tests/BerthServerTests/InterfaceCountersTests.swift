import BerthModel
import Foundation
import Testing

@testable import BerthServer

/// How berthd finds a running guest's taps from QEMU's own words (its command line and the
/// tun descriptor's fdinfo); the counters themselves are read in
/// `WebConsoleTests.networkCountersOfATapNICAndNoneForUserMode`.
struct InterfaceCountersTests {
    @Test func theTapOfANICIsTheDescriptorItsNetdevNames() {
        let arguments = [
            "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0", "-netdev", "tap,id=net1,fd=9,vhost=off",
            "-netdev", "tap,id=net10,fd=12",
        ]
        #expect(InterfaceCounters.tapDescriptor(arguments, index: 0) == nil)
        #expect(InterfaceCounters.tapDescriptor(arguments, index: 1) == 9)
        #expect(InterfaceCounters.tapDescriptor(arguments, index: 10) == 12)
        #expect(InterfaceCounters.tapDescriptor(arguments, index: 2) == nil)
    }

    @Test func onlyAPlainInterfaceNameIsTakenFromFdinfo() {
        #expect(InterfaceCounters.interfaceName(fdinfo: "pos:\t0\nflags:\t02\nmnt_id:\t25\niff:\tbtap3\n") == "btap3")
        #expect(InterfaceCounters.interfaceName(fdinfo: "pos:\t0\nflags:\t02\n") == nil)
        #expect(InterfaceCounters.interfaceName(fdinfo: "iff:\t../../etc\n") == nil)
        #expect(InterfaceCounters.interfaceName(fdinfo: "iff:\tname-longer-than-fifteen\n") == nil)
    }

    @Test func aUserModeNICHasNoCounters() {
        let stats = InterfaceCounters.read(pid: getpid(), nics: [NICSpec(mode: .user)])
        #expect(stats == [InterfaceStats(index: 0, mode: "user")])
    }
}
