import BerthFormats
import Testing

@testable import BerthCLI

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
