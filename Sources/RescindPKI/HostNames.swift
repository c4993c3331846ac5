import SwiftASN1
import X509

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Android)
    import Android
#elseif canImport(Darwin)
    import Darwin
#endif

/// Turning the `hosts` of an identity into subject alternative names.
enum HostNames {
    /// The subject alternative names for `hosts`, in order and without duplicates.
    ///
    /// Entries that parse as IPv4 or IPv6 addresses (IPv6 optionally in brackets) become IP address
    /// names; everything else must be a valid DNS name and becomes a DNS name.
    static func subjectAlternativeNames(for hosts: [String]) throws -> [GeneralName] {
        var names: [GeneralName] = []
        var seen = Set<GeneralName>()
        for host in hosts {
            let name: GeneralName
            if let address = self.ipAddressBytes(host) {
                name = .ipAddress(ASN1OctetString(contentBytes: address[...]))
            } else {
                try self.validateDNSName(host)
                name = .dnsName(host)
            }
            if seen.insert(name).inserted {
                names.append(name)
            }
        }
        return names
    }

    /// The 4 or 16 network-order bytes of an IPv4 or IPv6 address, or nil if `host` is not one.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        var text = host
        if text.hasPrefix("["), text.hasSuffix("]"), text.count >= 2 {
            text = String(text.dropFirst().dropLast())
        }
        guard !text.isEmpty, !text.utf8.contains(0) else {
            return nil
        }

        var ipv4 = in_addr()
        if text.withCString({ inet_pton(AF_INET, $0, &ipv4) }) == 1 {
            return withUnsafeBytes(of: &ipv4) { Array($0) }
        }
        var ipv6 = in6_addr()
        if text.withCString({ inet_pton(AF_INET6, $0, &ipv6) }) == 1 {
            return withUnsafeBytes(of: &ipv6) { Array($0) }
        }
        return nil
    }

    /// Checks that `host` is a DNS name: dot-separated labels of 1 to 63 ASCII letters, digits and
    /// hyphens (not at either end of a label), at most 253 characters in all, the leftmost label
    /// optionally `*`, and a last label that is not all digits (so that typos of IP addresses are refused).
    static func validateDNSName(_ host: String) throws {
        let invalid = PKIError(
            .invalidHost,
            "\(CertificateAuthority.quoted(host)) is neither an IP address nor a valid DNS name"
        )
        let bytes = Array(host.utf8)
        guard !bytes.isEmpty, bytes.count <= 253 else {
            throw invalid
        }
        let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        for (index, label) in labels.enumerated() {
            if index == 0, label.elementsEqual("*".utf8), labels.count >= 3 {
                continue
            }
            guard
                (1...63).contains(label.count),
                label.first != UInt8(ascii: "-"),
                label.last != UInt8(ascii: "-"),
                label.allSatisfy({ byte in
                    (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                        || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                        || byte == UInt8(ascii: "-")
                })
            else {
                throw invalid
            }
        }
        if let last = labels.last,
            last.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        {
            throw invalid
        }
    }
}
