"""Sign-time checks on the signing certificate and on a fresh timestamp token (spec §4.8, §5.2).

The rules themselves live below the signer: ``nuseal.x509.certs`` (NU3013-NU3017 and the code-signing usage)
and ``nuseal.timestamp.token`` (NU3019-NU3036). This module only decides what is fatal at sign time: every
certificate or token problem raises (``CertificateError`` / ``TimestampError``); a few chain findings are
warnings, returned as warning-level ``Finding`` objects for the caller to log.

Chain building (``nuseal.x509.chain``) runs only when the caller passes a ``TrustStore``: nuseal has no machine
trust store to fall back on. Revocation is never checked at sign time (no network from the signer; the verifier
checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from cryptography import x509

from nuseal import oids
from nuseal.codes import NuCode
from nuseal.errors import CertificateError, TimestampError
from nuseal.findings import Finding, Severity, Target
from nuseal.timestamp.token import Timestamp, check_timestamp, load_timestamp
from nuseal.x509 import certs

if TYPE_CHECKING:
    from nuseal.x509.chain import ChainResult
    from nuseal.x509.roots import TrustStore

# Chain building (``nuseal.x509.chain``, with revocation and the root bundle's modules) is imported only when a
# trust store asks for it: signing without one (the usual case) does not load it at start-up.


def check_signing_certificate(
    chain: Sequence[x509.Certificate], now: datetime, trust_store: TrustStore | None = None
) -> list[Finding]:
    """Sign-time checks (spec §4.8): errors raise ``CertificateError``; warnings are returned.

    ``chain`` is leaf first, as the signer assembled it. Without ``trust_store`` the chain is judged from the
    certificates given: an incomplete chain or a self-issued certificate is a NU3018 *warning*. With one, the
    chain is built as NuGet does: an untrusted root is a NU3018 warning for a self-issued certificate and an
    error otherwise; a certificate not valid for code signing anywhere in the chain is a NU3018 error.

    The verdict depends on nothing but ``chain``, ``now`` and ``trust_store``, so the last few are remembered
    (a batch signs every package with the same chain within the same second; errors are never remembered and
    raise again).
    """
    return list(_signing_certificate_verdict(tuple(chain), now, _Same(trust_store)))


class _Same:
    """Hashes and compares by identity: a ``TrustStore`` is immutable but costly to hash (tuples of roots)."""

    __slots__ = ("value",)

    def __init__(self, value: TrustStore | None) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


@lru_cache(maxsize=16)
def _signing_certificate_verdict(chain: tuple[x509.Certificate, ...], now: datetime, store: _Same
                                 ) -> tuple[Finding, ...]:
    return tuple(_check_signing_certificate(chain, now, store.value))


def _check_signing_certificate(
    chain: Sequence[x509.Certificate], now: datetime, trust_store: TrustStore | None
) -> list[Finding]:
    leaf = chain[0]
    fp = certs.fingerprint(leaf)
    for code, message in certs.check_signing_certificate(leaf, now):
        raise CertificateError(f"{message} (certificate {fp})", code)
    for cert in chain:
        if certs.not_after(cert) < now.astimezone(UTC):
            raise CertificateError(
                "Certificate chain validation failed. A certificate in the chain has expired "
                f"(certificate {certs.fingerprint(cert)} expired {certs.not_after(cert).isoformat()}).",
                NuCode.NU3018,
            )
    if trust_store is None:
        return _unbuilt_chain_warnings(chain)
    from nuseal.x509.chain import build_chain

    built = build_chain(leaf, extra_certificates=chain, trust_anchors=trust_store.code_signing,
                        usage_eku=oids.CODE_SIGNING_EKU, verification_time=now, revocation=None)
    return _chain_findings(built, fp, NuCode.NU3018, self_issued_ok=certs.is_self_issued(leaf))


def _warning(code: NuCode, message: str, fingerprint: str) -> Finding:
    """A sign-time warning about the signing certificate (its chain), pinned to the certificate's fingerprint."""
    return Finding(code, Severity.WARNING, message, Target.PRIMARY, fingerprint)


def _unbuilt_chain_warnings(chain: Sequence[x509.Certificate]) -> list[Finding]:
    last = chain[-1]
    if not certs.is_self_issued(last):
        return [_warning(NuCode.NU3018,
                         "The certificate chain could not be built to a root certificate from the certificates "
                         f"given (last certificate {certs.fingerprint(last)}, issued by "
                         f"{certs.name_string(last.issuer)}). The package will be signed with a partial chain.",
                         certs.fingerprint(chain[0]))]
    if len(chain) == 1:
        return [_warning(NuCode.NU3018,
                         "A certificate chain processed, but terminated in a root certificate which is not trusted "
                         f"by the trust provider (self-issued certificate {certs.fingerprint(last)}).",
                         certs.fingerprint(last))]
    return []


def _chain_findings(built: ChainResult, fp: str, code: NuCode, *, self_issued_ok: bool) -> list[Finding]:
    """Raise for a chain problem (``CertificateError`` / ``TimestampError`` by ``code``); return warnings."""
    from nuseal.x509.chain import ChainStatus

    # Never fatal at sign time: time validity is checked explicitly (NU3018 "expired" above) and revocation is
    # not looked up.
    ignored = (ChainStatus.NOT_TIME_VALID | ChainStatus.NOT_TIME_NESTED | ChainStatus.REVOCATION_STATUS_UNKNOWN
               | ChainStatus.OFFLINE_REVOCATION)
    status = built.status & ~ignored
    error_class = TimestampError if code is NuCode.NU3028 else CertificateError
    fatal = status & ~ChainStatus.UNTRUSTED_ROOT if self_issued_ok else status
    if fatal:
        names = tuple(flag.dotnet_name for flag in fatal.flags())
        details = "; ".join(m for m in built.status_messages() if m.startswith(names))
        raise error_class(f"Certificate chain validation failed for certificate {fp}: {details}", code)
    if status & (ChainStatus.UNTRUSTED_ROOT | ChainStatus.PARTIAL_CHAIN):
        # NuGet quirk: a self-issued signing certificate only warns at sign time (SigningUtility); we do the same.
        return [_warning(code, "A certificate chain processed, but terminated in a root certificate which is not "
                               f"trusted by the trust provider (self-issued certificate {fp}).", fp)]
    return []


def check_timestamp_token(
    token: bytes,
    signature_value: bytes,
    now: datetime,
    *,
    already_checked: bool = False,
    trust_store: TrustStore | None = None,
) -> list[Finding]:
    """Checks NuGet runs on a fresh timestamp token (spec §5.2); every problem raises ``TimestampError``.

    ``already_checked``: the timestamper ran ``nuseal.timestamp.token``'s checks itself (``HttpTimestamper``,
    ``InProcessTimestamper``), so they are not repeated; the token is then only loaded when a ``trust_store``
    asks for the TSA chain (NU3028). NU3026 (nonce) belongs to the client, which sees the request.
    """
    if already_checked and trust_store is None:
        return []
    timestamp = load_timestamp(token)
    if not already_checked:
        for code, message in check_timestamp(timestamp, signature_value, now):
            raise TimestampError(message, code)
    if trust_store is not None:
        _check_tsa_chain(timestamp, trust_store)
    return []


def _check_tsa_chain(timestamp: Timestamp, trust_store: TrustStore) -> None:
    from nuseal.x509.chain import build_chain

    built = build_chain(timestamp.signer_certificate, extra_certificates=timestamp.certificates,
                        trust_anchors=trust_store.timestamping, usage_eku=oids.TIME_STAMPING_EKU,
                        verification_time=timestamp.upper_limit, revocation=None)
    _chain_findings(built, certs.fingerprint(timestamp.signer_certificate), NuCode.NU3028, self_issued_ok=False)
