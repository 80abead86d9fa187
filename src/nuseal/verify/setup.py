"""What a verification needs besides the package and the clock: the policy and where trust comes from.

``VerificationSetup`` is plain data that ``nuseal.trust.policy_builder`` builds for the CLI and the feed server alike.
``open()`` turns it into the engine's ``TrustContext`` (it owns the revocation checker's HTTP client for the
duration). The setup pickles (certificates travel as DER), so a process pool can hand it to its workers and each
worker opens its own ``TrustContext`` (the bundled roots travel by name, other roots as DER).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from cryptography import x509

from nuseal.enums import RevocationMode
from nuseal.record import Struct
from nuseal.verify.engine import TrustContext
from nuseal.verify.policy import VerificationPolicy
from nuseal.x509 import certs
from nuseal.x509.revocation import RevocationChecker
from nuseal.x509.roots import Roots, RootSet, TrustStore

if TYPE_CHECKING:
    import httpx  # only for annotations: importing httpx costs CLI start-up time

#: Seconds per OCSP/CRL request unless the caller says otherwise (the CLI's ``--revocation-timeout`` default).
DEFAULT_REVOCATION_TIMEOUT = 10.0


class VerificationSetup(Struct, frozen=True):
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
        return (_rebuild, (self.policy, _portable(self.trust_store.code_signing),
                           _portable(self.trust_store.timestamping), self.revocation_mode, self.revocation_timeout))


_Portable = RootSet | tuple[bytes, ...]


def _portable(roots: Sequence[x509.Certificate]) -> _Portable:
    """A ``RootSet`` pickles itself (a bundled one by name, never parsed for that); certificates travel as DER."""
    return roots if isinstance(roots, RootSet) else tuple(certs.der(c) for c in roots)


def _restore(roots: _Portable) -> Roots:
    return roots if isinstance(roots, RootSet) else tuple(certs.load_der(d) for d in roots)


def _rebuild(policy: VerificationPolicy, code_signing: _Portable, timestamping: _Portable, mode: RevocationMode,
             timeout: float) -> VerificationSetup:
    return VerificationSetup(policy, TrustStore(_restore(code_signing), _restore(timestamping)), mode, timeout)
