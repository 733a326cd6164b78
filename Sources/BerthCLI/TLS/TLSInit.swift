import ArgumentParser
import BerthModel
import Foundation
import X509

/// `berth tls`: certificates for remote access to berthd.
struct TLSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tls", abstract: "Certificates for berthd's TLS listener and its remote clients.",
        subcommands: [TLSInit.self])
}

/// `berth tls init`: a CA, a server certificate and a client certificate, where berthd and the
/// CLI look for them by default.
struct TLSInit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Make a CA, a server certificate and a client certificate for TLS connections to berthd.",
        discussion: """
            Writes ca-cert.pem, server-cert.pem, client-cert.pem and private/{ca,server,client}-key.pem (0600) into \
            --dir (default: /etc/berth/pki as root, ~/.config/berth/pki otherwise, <state>/pki with BERTH_STATE_DIR, \
            or BERTH_PKI_DIR), where berthd (--listen on a non-loopback address) and 'berth --connect https://…' find \
            them. An existing CA in the directory is reused, so running it again with --force issues new server and \
            client certificates from the same CA. On another client, copy ca-cert.pem, client-cert.pem and \
            private/client-key.pem into its directory.
            """)

    @Option(help: "Directory to write into.") var dir: String?
    @Option(
        name: .customLong("server-name"),
        help: "A DNS name or IP address clients reach berthd by (repeat for more). Default: this host's name, localhost, 127.0.0.1.")
    var serverNames: [String] = []
    @Option(name: .customLong("client"), help: "The client certificate's name.") var clientName = "berth-client"
    @Option(help: "Days the new certificates are valid (1...36500).") var days = 3650
    @Flag(help: "Replace existing server and client certificates (the CA is kept).") var force = false

    func validate() throws {
        guard (1...36500).contains(days) else { throw ValidationError("--days takes 1...36500.") }
    }

    func run() async throws {
        let directory = dir ?? DefaultPaths.current().pkiDirectory
        let server = TLSFiles.server(in: directory)
        let client = TLSFiles.client(in: directory)
        if !force {
            for path in [server.certificate, server.key, client.certificate, client.key]
            where FileManager.default.fileExists(atPath: path) {
                throw BerthError(
                    .alreadyExists, "\(path) exists.",
                    remedy: "Give --force to issue new server and client certificates from the same CA, or --dir for another directory.")
            }
        }
        try PEMFiles.makeDirectories(directory)
        let caKeyPath = TLSFiles.caKey(in: directory)
        let authority: CertificateAuthority
        switch (FileManager.default.fileExists(atPath: server.ca), FileManager.default.fileExists(atPath: caKeyPath)) {
        case (true, true):
            authority = try CertificateAuthority.load(certificate: server.ca, key: caKeyPath)
            print("Using the CA in \(server.ca).")
        case (false, false):
            // A random suffix: CAs made on two hosts of the same name stay apart for a reader.
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            authority = try CertificateAuthority.make(name: "Berth CA on \(Self.hostName) \(suffix)", days: max(days, 3650))
            try PEMFiles.write(authority.key.pemRepresentation, to: caKeyPath, secret: true)
            try PEMFiles.write(try authority.certificate.serializeAsPEM().pemString, to: server.ca, secret: false)
            print("CA:                 \(server.ca) (key \(caKeyPath))")
        default:
            throw BerthError(
                .invalidArgument, "\(directory) holds only half of a CA (\(server.ca) and \(caKeyPath) go together).",
                remedy: "Put the missing file back, or use another --dir.")
        }
        let names = serverNames.isEmpty ? [Self.hostName, "localhost", "127.0.0.1"] : serverNames
        try authority.write(.server, names: names, days: days, to: server)
        print("Server certificate: \(server.certificate) for \(names.joined(separator: ", ")) (key \(server.key))")
        try authority.write(.client, names: [clientName], days: days, to: client)
        print("Client certificate: \(client.certificate) for \(clientName) (key \(client.key))")
        print(
            "Next: berthd --listen ADDRESS:8000 uses them (or --tls-cert/--tls-key/--tls-ca); clients run 'berth --connect https://\(names[0]):8000 list'."
        )
    }

    static var hostName: String { ProcessInfo.processInfo.hostName }
}

/// PEM files written whole: keys 0600 in a 0700 `private/`, certificates 0644.
enum PEMFiles {
    static func makeDirectories(_ directory: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(
                atPath: directory + "/private", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw BerthError(.unavailable, "Cannot create \(directory)/private: \(error.localizedDescription)", remedy: "Give a writable --dir.")
        }
    }

    /// Written under a temporary name and renamed into place, so a reader never sees half a key.
    static func write(_ text: String, to path: String, secret: Bool) throws {
        let temporary = path + ".new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, secret ? 0o600 : 0o644)
        guard fd >= 0 else {
            throw BerthError(.unavailable, "Cannot write \(path): \(String(cString: strerror(errno)))", remedy: "Give a writable --dir.")
        }
        let bytes = Array((text.hasSuffix("\n") ? text : text + "\n").utf8)
        let written = Glibc.write(fd, bytes, bytes.count)
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BerthError(.unavailable, "Cannot write \(path).", remedy: "Check free space and permissions in its directory.")
        }
    }
}
