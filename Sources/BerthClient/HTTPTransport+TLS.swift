import BerthModel
import FoundationEssentials
import Glibc
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization
import X509

/// TLS to a remote berthd: the connection, and failures told in a user's words.
extension HTTPTransport {
    static func tlsConfiguration(_ tls: TLSSettings) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots = .certificates(try load(tls.ca, "CA certificate") { try NIOSSLCertificate.fromPEMFile($0) })
        if let certificate = tls.certificate, let key = tls.key {
            configuration.certificateChain = try load(certificate, "client certificate") { try NIOSSLCertificate.fromPEMFile($0) }
                .map { .certificate($0) }
            configuration.privateKey = .privateKey(try load(key, "client key") { try NIOSSLPrivateKey(file: $0, format: .pem) })
        }
        return configuration
    }

    private static func load<T>(_ path: String, _ what: String, _ body: (String) throws -> T) throws -> T {
        do {
            return try body(path)
        } catch {
            throw BerthError(
                .invalidArgument, "Cannot read the \(what) \(path) as PEM: \(error).",
                remedy: "Give the file 'berth tls init' wrote (--tls-ca, --tls-cert, --tls-key).")
        }
    }

    /// TLS for `https://HOST` (SNI and name check by DNS name, or by the peer's address when
    /// HOST is an IP address), put on a channel before the protocol on top of it.
    static func tlsLayer(
        host: String, tls: TLSSettings,
        verify: (@Sendable ([NIOSSLCertificate], EventLoopPromise<NIOSSLVerificationResult>) -> Void)? = nil
    ) throws -> @Sendable (any Channel) throws -> Void {
        let context = try NIOSSLContext(configuration: tlsConfiguration(tls))
        let serverName = isIPAddress(host) ? nil : host
        return { channel in
            let handler =
                if let verify {
                    try NIOSSLClientHandler(context: context, serverHostname: serverName, customVerificationCallback: verify)
                } else {
                    try NIOSSLClientHandler(context: context, serverHostname: serverName)
                }
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func isTLS(_ error: any Error) -> Bool { error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError }

    /// A TLS failure as what happened and what to do, or nil when `error` is not one.
    static func tlsFailure(_ error: any Error, host: String, port: Int, tls: TLSSettings) async -> BerthError? {
        guard isTLS(error) else { return nil }
        let text = "\(error)"
        let address = "berthd at https://\(Endpoint.hostPort(host, port))"
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("failedToValidateHostname") || text.contains("hostname") {
            return await serverCertificateFailure(address: address, host: host, port: port, tls: tls)
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") {
            return BerthError(
                .connection, "\(address) does not speak TLS on that port.",
                remedy: "Start berthd there with TLS (berth tls init, then berthd --listen ADDRESS:PORT), or check the port.")
        }
        for alert in [
            "ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE", "ALERT_CERTIFICATE_EXPIRED", "ALERT_CERTIFICATE_REQUIRED", "ALERT_HANDSHAKE_FAILURE",
        ]
        where text.contains(alert) {
            return clientCertificateRefused(address: address, tls: tls, alert: alert)
        }
        return BerthError(
            .connection, "The TLS connection to \(address) failed: \(text).",
            remedy: "Check that berthd there was started with the certificates of 'berth tls init' and that the CA matches --tls-ca.")
    }

    /// berthd refused this client's certificate during the handshake.
    static func clientCertificateRefused(address: String, tls: TLSSettings, alert: String) -> BerthError {
        guard let path = tls.certificate else {
            return BerthError(
                .unauthorized, "\(address) wants a client certificate and none was given.",
                remedy: "Give --tls-cert and --tls-key (the files 'berth tls init' wrote), or install them in \(DefaultPaths.current().pkiDirectory)."
            )
        }
        if let certificate = try? Certificate(pemEncoded: String(contentsOfFile: path, encoding: .utf8)), certificate.notValidAfter < Date() {
            return BerthError(
                .unauthorized, "This client's certificate \(path) expired on \(certificate.notValidAfter); \(address) refused it.",
                remedy: "Issue a new one with 'berth tls init --force' on the host holding the CA, and copy it here.")
        }
        return BerthError(
            .unauthorized, "\(address) refused this client's certificate \(path) (\(alert)): it was not signed by the CA berthd trusts.",
            remedy:
                "Use a client certificate from the CA berthd was given (--tls-ca on that host): copy client-cert.pem and private/client-key.pem from where its 'berth tls init' ran."
        )
    }

    /// Why berthd's certificate was not accepted: connects once more, takes the certificate it
    /// presents without trusting it, and compares it with the CA and the name used.
    static func serverCertificateFailure(address: String, host: String, port: Int, tls: TLSSettings) async -> BerthError {
        let general = BerthError(
            .connection, "\(address) presented a certificate that the CA in \(tls.ca) does not vouch for (unknown CA, wrong name or expired).",
            remedy:
                "Copy ca-cert.pem from the host where berthd's certificate was made (or give --tls-ca), and connect by a name the certificate holds.")
        guard let leaf = await presentedCertificate(host: host, port: port, tls: tls),
            let ca = try? Certificate(pemEncoded: String(contentsOfFile: tls.ca, encoding: .utf8))
        else { return general }
        let now = Date()
        if leaf.notValidAfter < now {
            return BerthError(
                .connection, "\(address) presented a certificate that expired on \(leaf.notValidAfter).",
                remedy: "On that host, run 'berth tls init --force --server-name \(host)' and restart berthd.")
        }
        if leaf.notValidBefore > now {
            return BerthError(
                .connection, "\(address) presented a certificate valid only from \(leaf.notValidBefore).",
                remedy: "Check this host's clock and that host's clock.")
        }
        if ca.notValidAfter < now {
            return BerthError(
                .connection, "The CA certificate \(tls.ca) expired on \(ca.notValidAfter).",
                remedy: "Make a new CA with 'berth tls init' and new certificates from it.")
        }
        // By signature, not by name: two sites' CAs may carry the same name.
        if leaf.issuer != ca.subject || !ca.publicKey.isValidSignature(leaf.signature, for: leaf) {
            return BerthError(
                .connection,
                "\(address) presented a certificate issued by '\(leaf.issuer)', not by the CA in \(tls.ca) ('\(ca.subject)'): unknown certificate.",
                remedy:
                    "If that host is yours, copy its ca-cert.pem here (or give --tls-ca); otherwise do not connect: it may not be the host you meant."
            )
        }
        let names = (try? leaf.extensions.subjectAlternativeNames).flatMap { $0 }.map { $0.map(describe) } ?? []
        return BerthError(
            .connection,
            "\(address) presented a certificate for \(names.isEmpty ? "'\(leaf.subject)'" : names.joined(separator: ", ")), which does not name \(host).",
            remedy: "Connect by a name the certificate holds, or on that host run 'berth tls init --force --server-name \(host)' and restart berthd.")
    }

    /// A certificate's name as a user writes it: `berth1.example.org`, `192.0.2.10`.
    static func describe(_ name: GeneralName) -> String {
        switch name {
        case .dnsName(let dns): return dns
        case .ipAddress(let octets):
            let bytes = Array(octets.bytes)
            if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
            var address = in6_addr()
            var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard bytes.count == 16 else { return "\(name)" }
            withUnsafeMutableBytes(of: &address) { $0.copyBytes(from: bytes) }
            inet_ntop(AF_INET6, &address, &text, socklen_t(text.count))
            return String(cString: text)
        default: return "\(name)"
        }
    }

    /// The certificate berthd presents, read without trusting it (the handshake is then failed).
    static func presentedCertificate(host: String, port: Int, tls: TLSSettings) async -> Certificate? {
        final class Seen: Sendable { let der = Mutex<[UInt8]?>(nil) }
        let seen = Seen()
        do {
            let tlsLayer = try tlsLayer(host: host, tls: tls) { chain, promise in
                seen.der.withLock { $0 = try? chain.first?.toDERBytes() }
                promise.succeed(.failed)
            }
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.seconds(10))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try tlsLayer(channel)
                        return try HTTPTransport.httpLayer(channel)
                    }
                }
            try? await channel.executeThenClose { inbound, _ in
                for try await _ in inbound {}
            }
        } catch {
            // The handshake fails by design; what matters is what was seen.
        }
        return seen.der.withLock { $0 }.flatMap { try? Certificate(derEncoded: $0) }
    }
}
