"""``certs.quiet()`` silences cryptography's RFC 5280 warnings inside, nested or not, and restores the warning
filters on the way out, also when an exception leaves it."""

from __future__ import annotations

import warnings

import pytest
from cryptography.utils import CryptographyDeprecationWarning

from nuseal.x509 import certs


def _warn() -> None:
    warnings.warn("Parsed a serial number which wasn't positive", CryptographyDeprecationWarning, stacklevel=1)
    warnings.warn("Attribute's length must be >= 2 and <= 2, but it was 3", UserWarning, stacklevel=1)


def test_warnings_are_silenced_inside_and_filters_restored_after() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = list(warnings.filters)
        with certs.quiet():
            _warn()
            with certs.quiet():  # nested: nothing more to install, nothing removed on the way out
                _warn()
            _warn()
        assert warnings.filters == before
        with pytest.raises(CryptographyDeprecationWarning):
            _warn()


def test_an_exception_leaves_the_filters_as_they_were() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        before = list(warnings.filters)
        with pytest.raises(KeyError), certs.quiet(), certs.quiet():
            raise KeyError("inside")
        assert warnings.filters == before
        with certs.quiet():  # and the nesting depth was reset: this one installs the filters again
            _warn()
        with pytest.raises(UserWarning):
            warnings.warn("Attribute's length", UserWarning, stacklevel=1)
