"""nuget.config files with a DTD are refused (.NET's XmlReader prohibits DTDs), however the DOCTYPE is disguised,
before libxml2 parses anything; comments that merely mention a DOCTYPE are fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.errors import TrustConfigError
from nuseal.package.xmlsafe import prolog_declares_dtd
from nuseal.trust.nuget_config import ConfigFile

ENTITY_USE = '<configuration><config><add key="k" value="&x;"/></config></configuration>'

REFUSED = {
    "plain": '<!DOCTYPE configuration [<!ENTITY x "y">]>' + ENTITY_USE,
    # The bypass of issue 8: a comment naming the root element made the old check stop before the DOCTYPE.
    "comment-naming-the-root-first": '<!-- <configuration> --><!DOCTYPE configuration [<!ENTITY x "y">]>'
                                     + ENTITY_USE,
    "after-declaration-comment-and-pi": '<?xml version="1.0" encoding="utf-8"?>\n<!-- a -->\n<?pi data?>\n'
                                        '<!DOCTYPE configuration SYSTEM "http://127.0.0.1:9/x.dtd"><configuration/>',
    "lowercase": "<!doctype configuration><configuration/>",
    "external-file-entity": '<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + ENTITY_USE,
}
ACCEPTED = {
    "doctype-text-in-a-comment": '<?xml version="1.0"?>\n<!-- <!DOCTYPE configuration> -->\n<configuration/>',
    "doctype-text-inside-the-root": "<configuration><!-- <!DOCTYPE x> --></configuration>",
}


@pytest.mark.parametrize("text", REFUSED.values(), ids=REFUSED.keys())
def test_dtd_is_refused(tmp_path: Path, text: str) -> None:
    assert prolog_declares_dtd(text)
    path = tmp_path / "nuget.config"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrustConfigError, match=r"DTDs are not allowed"):
        ConfigFile.load(path)


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_comments_mentioning_a_doctype_are_not_a_dtd(tmp_path: Path, text: str) -> None:
    assert not prolog_declares_dtd(text)
    path = tmp_path / "nuget.config"
    path.write_text(text, encoding="utf-8")
    assert ConfigFile.load(path).path == path
