import BerthFormats
import Testing

@testable import BerthCLI
@testable import BerthServer

/// URLs naming this host become 10.0.2.2 for a user-mode networking guest; others stay.
@Suite struct InstallRewriteTests {
    @Test(arguments: [
        ("http://localhost:8000/install/centos6/", "http://10.0.2.2:8000/install/centos6/"),
        ("http://127.0.0.1:41234/kickstarts/a.ks", "http://10.0.2.2:41234/kickstarts/a.ks"),
        ("https://LOCALHOST/tree/", "https://10.0.2.2/tree/"),
    ])
    func localURLsAreRewritten(_ url: String, _ expected: String) {
        #expect(Installer.guestURL(url) == expected)
    }

    @Test func otherHostsStay() {
        #expect(Installer.guestURL("http://hypervisor.example.com/install/6/x86_64/") == nil)
        #expect(Installer.guestURL("/srv/tree") == nil)
    }

    @Test func kickstartArgumentIsReplacedOrAdded() {
        #expect(
            VirtInstallRequest.replacingArgument(key: "ks", in: "ks=http://a/1.ks console=ttyS0", with: "http://b/2.ks", appendIfMissing: true)
                == "ks=http://b/2.ks console=ttyS0")
        #expect(VirtInstallRequest.replacingArgument(key: "ks", in: "inst.ks=x method=y", with: "z", appendIfMissing: true) == "inst.ks=z method=y")
        #expect(VirtInstallRequest.replacingArgument(key: "ks", in: "console=ttyS0", with: "z", appendIfMissing: true) == "ks=z console=ttyS0")
        #expect(Installer.kickstartArgument(in: ["  ", "ks=http://h/a.ks ip=dhcp"]) == "http://h/a.ks")
    }

    @Test func connectIsTakenOutOfTheVirtInstallOptions() {
        var arguments = ["--name", "x", "--connect", "/run/b.sock", "--ram=1", "--tls-ca=ca.pem"]
        #expect(Install.extractConnectionOptions(&arguments) == ["--connect", "/run/b.sock", "--tls-ca=ca.pem"])
        #expect(arguments == ["--name", "x", "--ram=1"])
    }
}

/// An install from berthd's own media server reads the registered directory; only loopback
/// URLs on the media port's `/install/NAME/` qualify, and never a path with `.` or `..`.
@Suite struct OwnMediaPathTests {
    @Test func loopbackURLsOnTheMediaPortNameTheTree() throws {
        let tree = try #require(Hypervisor.ownMediaPath("http://127.0.0.1:8001/install/centos6/", mediaPort: 8001))
        #expect(tree.name == "centos6" && tree.rest.isEmpty)
        let nested = try #require(Hypervisor.ownMediaPath("http://localhost:8001/install/c6/os/x86_64/", mediaPort: 8001))
        #expect(nested.name == "c6" && nested.rest == ["os", "x86_64"])
        let encoded = try #require(Hypervisor.ownMediaPath("http://127.0.0.1:8001/install/c%206/os/", mediaPort: 8001))
        #expect(encoded.name == "c 6" && encoded.rest == ["os"])
    }

    @Test(arguments: [
        "http://127.0.0.1:8002/install/centos6/",  // another port
        "http://10.0.2.2:8001/install/centos6/",  // not loopback
        "https://127.0.0.1:8001/install/centos6/",  // not the media server's scheme
        "http://127.0.0.1:8001/kickstarts/a.ks",  // not a tree
        "http://127.0.0.1:8001/install/",  // no name
        "http://127.0.0.1:8001/install/centos6/../../etc/",
        "http://127.0.0.1:8001/install/centos6/%2e%2e/secret/",
        "http://127.0.0.1:8001/install/centos6/./os/",
        "http://127.0.0.1:8001/install/centos6/a%2f..%2f..%2fetc/",  // an encoded separator
        "/srv/install/centos6",
    ])
    func everythingElseGoesOverHTTP(_ location: String) {
        #expect(Hypervisor.ownMediaPath(location, mediaPort: 8001) == nil)
    }
}
