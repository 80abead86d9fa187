"""cms.der: splitting BER/DER by offsets and comparing names as .NET's ``X500DistinguishedName.Name`` strings."""

from __future__ import annotations

import pytest
from asn1crypto import x509 as asn1_x509

from nuseal.cms import der


def _name(*pairs: tuple[str, str, str]) -> bytes:
    """A Name of single-attribute RDNs; each pair is (attribute, value, string type)."""
    rdns = [[{"type": t, "value": asn1_x509.DirectoryString(name=kind, value=v)}] for t, v, kind in pairs]
    return bytes(asn1_x509.Name.build({}).dump()) if not rdns else bytes(
        asn1_x509.Name(name="", value=asn1_x509.RDNSequence(rdns)).dump())


def test_tlvs_splits_definite_and_indefinite_values() -> None:
    data = bytes.fromhex("0201 05" "3080 0400 0000" "1f8101 01 ff")  # INTEGER, BER SEQUENCE, tag number 129
    assert der.tlvs(data) == [bytes.fromhex("020105"), bytes.fromhex("3080040000 00"), bytes.fromhex("1f810101ff")]


@pytest.mark.parametrize("data", ["0205 0102", "3080 0400", "0480 00", "02", "1f81", "0289 0000000000000000 01"],
                         ids=["short-contents", "no-end-of-contents", "indefinite-primitive", "no-length",
                              "tag-cut-off", "nine-length-octets"])
def test_malformed_values_are_value_errors(data: str) -> None:
    with pytest.raises(ValueError):
        der.tlvs(bytes.fromhex(data))


def test_contents_of_checks_tag_and_trailing_data() -> None:
    assert der.contents_of(bytes.fromhex("0403 616263"), 0x04) == b"abc"
    with pytest.raises(ValueError, match="expected tag 0x30"):
        der.contents_of(bytes.fromhex("0400"), 0x30)
    with pytest.raises(ValueError, match="trailing data"):
        der.contents_of(bytes.fromhex("0400 00"))


def test_nesting_is_bounded() -> None:
    deep = bytes.fromhex("3080") * 100 + bytes.fromhex("0000") * 100
    with pytest.raises(ValueError, match="too deep"):
        der.tlvs(deep)


def test_large_sets_split_in_linear_time() -> None:
    values = bytes.fromhex("0100") * 200_000  # 200,000 BOOLEANs: slicing per value would copy ~40 GB
    assert len(der.tlvs(values)) == 200_000


def test_names_compare_like_dotnet_name_strings() -> None:
    printable = _name(("country_name", "US", "printable_string"), ("common_name", "Test CA", "printable_string"))
    utf8 = _name(("country_name", "US", "printable_string"), ("common_name", "Test CA", "utf8_string"))
    bmp = _name(("country_name", "US", "printable_string"), ("common_name", "Test CA", "bmp_string"))
    lower = _name(("country_name", "US", "printable_string"), ("common_name", "test CA", "utf8_string"))
    spaced = _name(("country_name", "US", "printable_string"), ("common_name", "Test  CA", "utf8_string"))
    assert der.name_text(printable) == der.name_text(utf8) == der.name_text(bmp)
    assert der.name_text(lower) != der.name_text(utf8)  # ordinal: case matters
    assert der.name_text(spaced) != der.name_text(utf8)
    assert der.name_text(utf8) == (
        (("2.5.4.6", "US"),), (("2.5.4.3", "Test CA"),))


def test_non_string_values_compare_by_their_encoding() -> None:
    raw = bytes.fromhex("300e 310c 300a 0603 550403 0403 616263")  # CN as an OCTET STRING
    assert der.name_text(raw) == ((("2.5.4.3", "#0403616263"),),)
