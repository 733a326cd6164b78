import BerthModel
import Crypto
import Foundation
import SwiftASN1
import X509

/// A small CA for one site's berthd hosts and clients, as `berth tls init` makes it: P-256
/// keys, SHA-256 signatures, a CA certificate, server certificates naming the host's DNS names
/// and addresses, and client certificates (libvirt's `certtool` recipe, without certtool).
struct CertificateAuthority {
    let certificate: Certificate
    let key: P256.Signing.PrivateKey

    /// A new CA named `name`, valid for `days`.
    static func make(name: String, days: Int) throws -> CertificateAuthority {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Berth")
            CommonName(name)
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: Self.start, notValidAfter: Self.start.addingTimeInterval(Double(days) * 86400),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: publicKey)
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        return CertificateAuthority(certificate: certificate, key: key)
    }

    /// The CA `berth tls init` made earlier in `directory`.
    static func load(certificate path: String, key keyPath: String) throws -> CertificateAuthority {
        do {
            let certificate = try Certificate(pemEncoded: try String(contentsOfFile: path, encoding: .utf8))
            let key = try P256.Signing.PrivateKey(pemRepresentation: try String(contentsOfFile: keyPath, encoding: .utf8))
            guard certificate.publicKey == Certificate.PublicKey(key.publicKey) else {
                throw BerthError(
                    .invalidArgument, "The CA key \(keyPath) does not belong to the CA certificate \(path).",
                    remedy: "Put the matching key back, or use another --dir for a new CA.")
            }
            return CertificateAuthority(certificate: certificate, key: key)
        } catch let error as BerthError {
            throw error
        } catch {
            throw BerthError(
                .invalidArgument, "Cannot read the CA in \(path) and \(keyPath): \(error)",
                remedy: "berth tls init reuses only a P-256 CA it made; use another --dir for a new CA.")
        }
    }

    enum Role { case server, client }

    /// A certificate for `names` (the first is the common name; for a server each name is a
    /// DNS name or, when it parses as one, an IP address) and its new key.
    func issue(_ role: Role, names: [String], days: Int, from start: Date = CertificateAuthority.start) throws
        -> (certificate: Certificate, key: P256.Signing.PrivateKey)
    {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Berth")
            CommonName(names.first ?? "berth")
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        let alternativeNames = try SubjectAlternativeNames(names.map(Self.generalName))
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: start, notValidAfter: start.addingTimeInterval(Double(days) * 86400),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([role == .server ? .serverAuth : .clientAuth])
                SubjectKeyIdentifier(hash: publicKey)
                AuthorityKeyIdentifier(keyIdentifier: try self.certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
                if role == .server { alternativeNames }
            },
            issuerPrivateKey: Certificate.PrivateKey(self.key))
        return (certificate, key)
    }

    /// Issues a certificate and writes it and its key (0600) to `files`' certificate and key.
    func write(_ role: Role, names: [String], days: Int, from start: Date = CertificateAuthority.start, to files: TLSFiles) throws {
        let pair = try issue(role, names: names, days: days, from: start)
        try PEMFiles.write(pair.key.pemRepresentation, to: files.key, secret: true)
        try PEMFiles.write(try pair.certificate.serializeAsPEM().pemString, to: files.certificate, secret: false)
    }

    /// An IP address (v4 or v6) or else a DNS name.
    static func generalName(_ name: String) throws -> GeneralName {
        var v4 = in_addr()
        if inet_pton(AF_INET, name, &v4) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v4) { Array($0) })))
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, name, &v6) == 1 {
            return .ipAddress(ASN1OctetString(contentBytes: ArraySlice(withUnsafeBytes(of: &v6) { Array($0) })))
        }
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 < 0x80 && $0 > 0x20 }) else {
            throw BerthError(
                .invalidArgument, "'\(name)' is neither an IP address nor a DNS name.",
                remedy: "Give --server-name a host name (berth1.example.org) or an address (192.0.2.10).")
        }
        return .dnsName(name)
    }

    /// Five minutes back, so a peer whose clock is a little behind accepts a new certificate.
    static var start: Date { Date().addingTimeInterval(-300) }
}
