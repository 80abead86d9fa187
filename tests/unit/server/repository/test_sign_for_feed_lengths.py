"""``sign_for_feed`` countersigns promptly whatever the length of the service index URL (the validation job spun at
100% CPU for some lengths: asn1crypto re-encoded the edited signature, exponentially in its nesting depth, whenever
a length there ended in 0x80; see ``nuseal.cms.build._encoded``)."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support.repository_signing import SigningFeed, signatures_of
from tests.unit.server.repository.test_sign_for_feed import _sign

from nuseal.enums import SignatureKind


def _deadline(signum: int, frame: object) -> None:
    raise TimeoutError("sign_for_feed took more than 10 s")


def test_countersigning_is_prompt_at_every_service_index_url_length(feed: SigningFeed, tmp_path: Path) -> None:
    src = feed.build("Contoso.Lib", "1.0.0", author_signed=True)
    previous = signal.signal(signal.SIGALRM, _deadline)
    try:
        for length in range(100, 260):  # the lengths mod 256 of the parts that follow the URL's
            url = f"https://{'h' * length}/v3/index.json"
            signal.setitimer(signal.ITIMER_REAL, 10)  # a few milliseconds each; it never finished
            try:
                result, dst = _sign(feed, src, url=url, dst=tmp_path / "out.nupkg")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            assert result.author_signed, url
    finally:
        signal.signal(signal.SIGALRM, previous)
    carried = signatures_of(dst.read_bytes(), tmp_path)
    assert carried.primary is SignatureKind.AUTHOR and carried.service_index_url == url
