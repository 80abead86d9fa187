"""The project's one rule for reading untrusted XML (nuspec manifests, nuget.config files): no DTD at all.

.NET's ``XmlReader`` prohibits DTDs by default, so NuGet rejects a nuspec or a NuGet.Config that declares one;
nuseal does the same, and never resolves entities or touches the network while parsing. The refusal is checked
twice: on the prolog text before libxml2 sees it (so it never depends on libxml2's own limits or on whether the
rest parses) and on what libxml2 parsed (:func:`declares_dtd`).

``lxml`` is imported by the functions that use it, not by this module: verification reads a nuspec's identity with
the standard library's expat (:mod:`nuseal.package.nuspec_xml`) and needs only :func:`prolog_declares_dtd`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml import etree

#: What may precede the root element without being a DTD: white space, the XML declaration, processing
#: instructions and comments.
_PROLOG_ITEM = re.compile(r"\s*(?:<\?.*?\?>|<!--.*?-->)", re.DOTALL)


def prolog_declares_dtd(text: str) -> bool:
    """True when a ``<!`` markup declaration other than a comment (a DOCTYPE, whatever its case or spacing) comes
    before the root element. Comments and processing instructions are skipped, so one holding a root tag or
    ``<!DOCTYPE`` text neither hides nor fakes a declaration."""
    position = 0
    while True:
        item = _PROLOG_ITEM.match(text, position)
        if item is None or item.end() == position:
            break
        position = item.end()
    rest = text[position:].lstrip()
    return rest.startswith("<!") and not rest.startswith("<!--")


def declares_dtd(root: etree._Element) -> bool:
    """True when the parsed document has a DOCTYPE or an internal subset."""
    docinfo = root.getroottree().docinfo
    return bool(docinfo.doctype) or docinfo.internalDTD is not None


def hardened_parser(*, keep_comments: bool = False) -> etree.XMLParser:
    """An lxml parser that loads no DTD, resolves no entity, never uses the network and refuses huge trees."""
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=not keep_comments, remove_pis=not keep_comments,
                           remove_blank_text=False)
