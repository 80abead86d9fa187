"""The two readers of a nuspec's identity agree (issue 12): the expat reader that verification uses
(``nuspec_xml._expat_identity``) either answers exactly what the lxml reader (``parse_identity_lxml``) answers or
hands the document back, and ``parse_identity`` (expat first, lxml for the rest) gives the same identity or the
same error, word for word, as lxml alone, on ordinary and tricky documents."""

from __future__ import annotations

import pytest
from tests.unit.package.helpers import ManifestRow, manifest

from nuseal.errors import PackageFormatError
from nuseal.package import nuspec, nuspec_xml
from nuseal.package.nuspec_xml import PackageIdentity, parse_identity, parse_identity_lxml

NS = b"http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"
PLAIN = (b'<?xml version="1.0" encoding="utf-8"?><package xmlns="' + NS + b'"><metadata><id>A.B</id>'
         b"<version>1.0</version></metadata></package>")


def _doc(metadata: bytes, *, decl: bytes = b'<?xml version="1.0" encoding="utf-8"?>', root: bytes = b"package",
         ns: bytes = b' xmlns="' + NS + b'"') -> bytes:
    return decl + b"<" + root + ns + b"><metadata>" + metadata + b"</metadata></" + root + b">"


def _both(id_: bytes, version: bytes = b"1.0") -> bytes:
    return _doc(b"<id>" + id_ + b"</id><version>" + version + b"</version>")


#: (name, document, whether the expat reader answers itself)
CASES: list[tuple[str, bytes, bool]] = [
    ("plain", PLAIN, True),
    ("no declaration", _doc(b"<id>A</id><version>1.0</version>", decl=b""), True),
    ("no namespace", _doc(b"<id>A</id><version>1.0</version>", ns=b""), True),
    ("prefixed namespace", b'<n:package xmlns:n="' + NS + b'"><n:metadata><n:id>A</n:id><n:version>2.0.0-beta'
     b"</n:version></n:metadata></n:package>", True),
    ("mixed namespaces", b'<package xmlns="urn:a"><metadata xmlns="urn:b"><x:id xmlns:x="urn:c">A</x:id>'
     b"<version>1.0</version></metadata></package>", True),
    *[(f"namespace name {uri!r}", b'<package xmlns="' + uri.encode() + b'"><metadata><id>A</id>'
       b"<version>1</version></metadata></package>", answers)
      for uri, answers in [("urn:a b", False), ("urn:\u00e9", False), ("http://[x", False), ("http://a%zz", False),
                           ("http://a/b?c#d#e", False), ("http://x/{y}", False), ("foo", False), ("", True),
                           ("https://example.org/a/b.xsd", True), ("urn:x:y", True)]],
    ("utf-8 byte order mark", b"\xef\xbb\xbf" + PLAIN, True),
    ("utf-16 LE with BOM", PLAIN.replace(b"utf-8", b"utf-16").decode().encode("utf-16"), True),
    ("utf-16 BE with BOM", b"\xfe\xff" + PLAIN.replace(b"utf-8", b"utf-16").decode().encode("utf-16-be"), True),
    ("utf-16 LE, no declaration, BOM", _both(b"A").split(b"?>", 1)[1].decode().encode("utf-16"), True),
    ("single-quoted declaration, standalone", _both(b"A").replace(
        b'<?xml version="1.0" encoding="utf-8"?>', b"<?xml version='1.0' encoding='UTF-8' standalone='yes'?>"),
     True),
    ("latin-1 declared", _doc("<id>Caf\xe9</id><version>1.0</version>".encode("latin-1"),
                              decl=b'<?xml version="1.0" encoding="ISO-8859-1"?>'), False),
    ("windows-1252 declared", _doc("<id>Caf\xe9\u20ac</id><version>1.0</version>".encode("cp1252"),
                                   decl=b'<?xml version="1.0" encoding="windows-1252"?>'), False),
    ("xml 1.1", _both(b"A").replace(b'version="1.0" encoding', b'version="1.1" encoding'), False),
    ("unicode id", _both("\u041f\u0430\u043a\u0435\u0442.\U0001f600".encode()), True),
    ("white space and CRLF around the id", _both(b"\r\n  A.B \t\r\n"), True),
    ("comment inside the id", _both(b"A<!-- c -->B"), True),
    ("processing instruction inside the id", _both(b"A<?pi x?>B"), True),
    ("CDATA version", _doc(b"<id>A</id><version><![CDATA[1.0.0]]></version>"), True),
    ("character and predefined references", _both(b"&#65;&#x42;&amp;C&lt;"), True),
    ("child element inside the id", _both(b"A<b>x</b>B"), False),
    ("attribute on the id", _doc(b'<id lang="en">A</id><version>1.0</version>'), True),
    ("id given twice", _doc(b"<id>First</id><id>Second</id><version>1.0</version>"), True),
    ("version before id, other elements around",
     _doc(b"<title>t</title><version>3.0.0.0</version><authors>a</authors><id>A</id><tags/>"), True),
    ("metadata attributes", _both(b"A").replace(b"<metadata>", b'<metadata minClientVersion="2.12">'), True),
    ("id nested deeper", _doc(b"<group><id>A</id></group><version>1.0</version>"), False),
    ("id beside metadata", b'<package><id>A</id><metadata><version>1.0</version></metadata></package>', False),
    ("second metadata holds the id", b"<package><metadata><version>1.0</version></metadata><metadata><id>A</id>"
     b"</metadata></package>", False),
    ("id in a comment only", _doc(b"<!--<id>A</id>--><version>1.0</version>"), False),
    ("empty id", _doc(b"<id/><version>1.0</version>"), False),
    ("blank version", _doc(b"<id>A</id><version>  </version>"), False),
    ("unparsable version", _both(b"A", b"1.0.0.0.0"), False),
    ("version normalized", _both(b"A", b"01.02.0-RC.1+meta"), True),
    ("root is not package", _both(b"A").replace(b"package", b"packages"), False),
    ("no metadata", b'<package xmlns="' + NS + b'"><files/></package>', False),
    ("undefined entity", _both(b"A&foo;"), False),
    ("undeclared prefix", b"<x:package><metadata><id>A</id><version>1</version></metadata></x:package>", False),
    ("empty prefix binding", b'<package xmlns:p=""><metadata><id>A</id><version>1</version></metadata></package>',
     False),
    ("text after the root", PLAIN + b"junk", False),
    ("second root", PLAIN + b"<package/>", False),
    ("mismatched tag", PLAIN.replace(b"</metadata>", b"</metadatax>"), False),
    ("invalid utf-8", _both(b"A\xff"), False),
    ("NUL character reference", _both(b"A&#0;"), False),
    ("declaration not at the start", b" " + PLAIN, False),
    ("duplicate attribute", _both(b"A").replace(b"<metadata>", b'<metadata a="1" a="2">'), False),
    ("doctype", b'<?xml version="1.0"?><!DOCTYPE package [<!ENTITY e "E">]><package><metadata><id>&e;</id>'
     b"<version>1</version></metadata></package>", False),
    ("doctype after a comment", b"<!-- x --><!doctype package><package><metadata><id>A</id><version>1</version>"
     b"</metadata></package>", False),
    ("deep nesting", _doc(b"<id>A</id><version>1</version>" + b"<d>" * 300 + b"</d>" * 300), False),
    ("moderate nesting", _doc(b"<id>A</id><version>1</version>" + b"<d>" * 100 + b"</d>" * 100), True),
    ("very long element name", _doc(b"<id>A</id><version>1</version><" + b"n" * 60000 + b"/>"), False),
    ("empty document", b"", False),
    ("not xml", b"PK\x03\x04 not xml", False),
]


def _outcome(read: object, data: bytes) -> PackageIdentity | str:
    try:
        return read(data, "p.nupkg!p.nuspec")  # type: ignore[operator, no-any-return]
    except PackageFormatError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize(("data", "expat_answers"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_both_readers_agree(data: bytes, expat_answers: bool) -> None:
    reference = _outcome(parse_identity_lxml, data)
    fast = nuspec_xml._expat_identity(data)
    # The expat reader answers for exactly the documents listed as such, and then what lxml answers.
    assert (fast is not None) == expat_answers, reference
    if fast is not None:
        assert fast == reference
    assert _outcome(parse_identity, data) == reference


def test_the_cases_cover_errors_and_identities() -> None:
    # The table exercises both kinds of outcome on both paths (a table of only errors would prove little).
    outcomes = [_outcome(parse_identity_lxml, data) for _, data, _ in CASES]
    assert sum(isinstance(o, PackageIdentity) for o in outcomes) >= 20
    assert sum(isinstance(o, str) for o in outcomes) >= 15
    assert _outcome(parse_identity_lxml, _both(b"&#65;&#x42;&amp;C&lt;")) == PackageIdentity("AB&C<", "1.0.0")
    assert _outcome(parse_identity_lxml, _both(b"A<!-- c -->B")) == PackageIdentity("AB", "1.0.0")


def test_a_wrong_fast_reader_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison can fail: a fast reader that misreads an id shows up.
    monkeypatch.setattr(nuspec_xml, "_expat_identity", lambda data: PackageIdentity("Wrong", "1.0.0"))
    with pytest.raises(AssertionError):
        test_both_readers_agree(PLAIN, True)


READABLE = [r for r in manifest() if r.kind != "corrupt"]


@pytest.mark.parametrize("row", READABLE, ids=[r.path.name for r in READABLE])
def test_the_real_nuspecs_are_read_by_expat_as_by_lxml(row: ManifestRow) -> None:
    found = nuspec.read_nuspec_file(row.path)
    fast = nuspec_xml._expat_identity(found.data)
    assert fast is not None
    assert fast == parse_identity_lxml(found.data)
