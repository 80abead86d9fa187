"""What a verification needs besides the package and the clock: the policy and where trust comes from.

``VerificationSetup`` is plain data that ``nuseal.trust.policy_builder`` builds for the CLI and the feed server alike.
``open()`` turns it into the engine's ``TrustContext`` (it owns the revocation checker's HTTP client for the
duration). The setup pickles (certificates travel as DER), so a process pool can hand it to its workers and each
worker opens its own ``TrustContext``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from nuseal.enums import RevocationMode
from nuseal.verify.engine import TrustContext
from nuseal.verify.policy import VerificationPolicy
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import TrustStore

if TYPE_CHECKING:
    import httpx  # only for annotations: importing httpx costs CLI start-up time

#: Seconds per OCSP/CRL request unless the caller says otherwise (the CLI's ``--revocation-timeout`` default).
DEFAULT_REVOCATION_TIMEOUT = 10.0


@dataclass(frozen=True)
class VerificationSetup:
    """A policy, the trusted roots and the revocation mode/timeout. Frozen; derive variants with ``replace``."""

    policy: VerificationPolicy
    trust_store: TrustStore
    revocation_mode: RevocationMode = RevocationMode.ONLINE
    revocation_timeout: float = DEFAULT_REVOCATION_TIMEOUT

    @contextmanager
    def open(self, client: httpx.Client | None = None) -> Iterator[TrustContext]:
        """A ``TrustContext`` for this setup; its revocation checker is closed on exit. ``client`` (optional) is the
        HTTP client for OCSP/CRL requests; without one the checker makes its own in online mode."""
        with RevocationChecker(self.revocation_mode, client=client, timeout=self.revocation_timeout) as checker:
            yield TrustContext(self.trust_store, checker)

    def __reduce__(self) -> tuple[Any, ...]:
        # cryptography's certificates do not pickle: send them as DER.
        return (_rebuild, (self.policy, _ders(self.trust_store.code_signing), _ders(self.trust_store.timestamping),
                           self.revocation_mode, self.revocation_timeout))


def _ders(certificates: tuple[x509.Certificate, ...]) -> tuple[bytes, ...]:
    return tuple(c.public_bytes(Encoding.DER) for c in certificates)


def _rebuild(policy: VerificationPolicy, code_signing: tuple[bytes, ...], timestamping: tuple[bytes, ...],
             mode: RevocationMode, timeout: float) -> VerificationSetup:
    store = TrustStore(tuple(x509.load_der_x509_certificate(d) for d in code_signing),
                       tuple(x509.load_der_x509_certificate(d) for d in timestamping))
    return VerificationSetup(policy, store, mode, timeout)
