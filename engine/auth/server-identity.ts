import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity as nodeCheckServerIdentity, type PeerCertificate } from 'node:tls';

/**
 * Whether a server certificate names the host a client connected to; pass it as the
 * `checkServerIdentity` of every TLS client Ferry opens. Node 22's own check (seen on 22.23) takes an
 * IPv6 literal such as ::1 for a host name (url.domainToASCII returns '' for it), so it refuses a
 * certificate that lists that address. IP literals are matched here with OpenSSL's comparison of the
 * certificate's IP addresses; host names, and any mismatch, are left to Node.
 */
export const checkServerIdentity = (host: string, cert: PeerCertificate): Error | undefined =>
  isIP(host) !== 0 && cert.raw && new X509Certificate(cert.raw).checkIP(host) !== undefined ? undefined : nodeCheckServerIdentity(host, cert);
