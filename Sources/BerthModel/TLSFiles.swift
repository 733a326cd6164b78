import FoundationEssentials
import Glibc

/// One side's PEM files for a TLS connection between the CLI and berthd: the CA certificate
/// that vouches for the peer, and this side's own certificate and private key.
///
/// `berth tls init` writes them in one directory, laid out like libvirt's `/etc/pki`:
/// `ca-cert.pem`, `server-cert.pem`, `client-cert.pem`, and the keys under `private/`
/// (`private/ca-key.pem`, `private/server-key.pem`, `private/client-key.pem`, 0600).
public struct TLSFiles: Sendable, Equatable, Codable {
    public var ca: String
    public var certificate: String
    public var key: String

    public init(ca: String, certificate: String, key: String) {
        self.ca = ca
        self.certificate = certificate
        self.key = key
    }

    /// berthd's files in `directory` (default: `DefaultPaths.pkiDirectory`).
    public static func server(in directory: String) -> TLSFiles {
        TLSFiles(ca: directory + "/ca-cert.pem", certificate: directory + "/server-cert.pem", key: directory + "/private/server-key.pem")
    }

    /// The CLI's files in `directory` (default: `DefaultPaths.pkiDirectory`).
    public static func client(in directory: String) -> TLSFiles {
        TLSFiles(ca: directory + "/ca-cert.pem", certificate: directory + "/client-cert.pem", key: directory + "/private/client-key.pem")
    }

    /// The CA's own key, kept so that `berth tls init` can issue more certificates.
    public static func caKey(in directory: String) -> String { directory + "/private/ca-key.pem" }

    /// Whether all three files exist.
    public var exist: Bool { [ca, certificate, key].allSatisfy { FileManager.default.fileExists(atPath: $0) } }
}
