"""Read and write NuGet's ``nuget.config`` files losslessly (spec §7.4).

``ConfigFile`` is one file: it parses ``packageSources``, ``config``, ``trustedSigners`` and
``packageSourceCredentials`` and keeps everything else (unknown elements and attributes, comments,
whitespace, ordering) untouched. Saving an unmodified file writes its original bytes; saving a modified
one copies every unedited node byte-for-byte from the original text and only serializes the nodes that an
edit created or changed. ``NuGetSettings`` is the merged view over a chain of files, as NuGet's
``Settings`` computes it (closest file wins, ``<clear/>`` drops what further files said).

This module never reads the environment: callers pass the working directory and the home directory.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nuseal.enums import HashAlgorithmName
from nuseal.errors import TrustConfigError
from nuseal.package.xmlsafe import declares_dtd, hardened_parser, prolog_declares_dtd
from nuseal.record import Struct
from nuseal.trust.trusted_signers import (
    SignatureValidationMode,
    SignerKind,
    TrustedCertificate,
    TrustedSigner,
)

if TYPE_CHECKING:  # imported where a file is parsed or edited: a verification without nuget.config needs no lxml
    from lxml import etree

#: File names NuGet looks for in each directory, in precedence order (case-sensitive file systems).
CONFIG_FILE_NAMES = ("nuget.config", "NuGet.config", "NuGet.Config")
#: NuGet's user-level config on Linux/macOS, relative to the home directory.
USER_CONFIG_RELATIVE = Path(".nuget") / "NuGet" / "NuGet.Config"

# What NuGet writes when it has to create the user-level config.
DEFAULT_USER_CONFIG = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    "<configuration>\n"
    "  <packageSources>\n"
    '    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />\n'
    "  </packageSources>\n"
    "</configuration>\n"
)
EMPTY_CONFIG = '<?xml version="1.0" encoding="utf-8"?>\n<configuration>\n</configuration>\n'

_T = TypeVar("_T")


@functools.cache
def _parser() -> etree.XMLParser:
    # Comments and processing instructions are kept: the file is rewritten losslessly.
    return hardened_parser(keep_comments=True)


class PackageSource(Struct, frozen=True):
    """``<packageSources><add key value protocolVersion>``."""

    name: str
    url: str
    protocol_version: str | None = None


class _Span(Struct, frozen=True):
    """Where an original node sits in the original text (character offsets)."""

    start: int
    end: int
    content_start: int  # after the start tag (== end for self-closing tags and comments)
    content_end: int  # before the end tag
    tail_end: int  # end of the text following the node inside its parent


def _parse_error(path: Path, reason: str, element: etree._Element | None = None) -> TrustConfigError:
    where = ""
    if element is not None:
        name = element.get("name")
        label = f"<{_tag(element)}{f' name={name!r}' if name is not None else ''}>"
        where = f" Element: {label}" + (f" at line {element.sourceline}." if element.sourceline else ".")
    return TrustConfigError(f"Unable to parse config file because: {reason} Path: '{path}'.{where}")


def _tag(el: etree._Element) -> str:
    return el.tag if isinstance(el.tag, str) else ""


def _local(tag: object) -> str:
    return tag.lower() if isinstance(tag, str) else ""


def _decode_element_name(name: str) -> str:
    """Undo ``XmlConvert.EncodeLocalName`` (``_x0020_`` → space), as NuGet does for credential sections."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), name)


def _encode_element_name(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        ok = ch.isalnum() or ch in "_" or (i > 0 and ch in "-.")
        out.append(ch if ok else f"_x{ord(ch):04X}_")
    return "".join(out)


def _scan_nodes(text: str, root_start: int) -> list[_Span]:
    """Spans of every element, comment and PI from the root element on, in document order.

    This mirrors lxml's ``root.iter()`` order so the two can be zipped. DOCTYPEs are refused before we get
    here, so the grammar is small: tags with quoted attributes, comments, PIs, CDATA and character data.
    """
    spans: list[list[int]] = []
    # parents: stack of indexes of open elements; last_child[parent_idx] = index of the latest child node.
    stack: list[int] = []
    pending_tail: list[int] = []  # nodes whose tail ends at the next node boundary
    i = root_start
    n = len(text)

    def close_tails(at: int) -> None:
        for k in pending_tail:
            spans[k][4] = at
        pending_tail.clear()

    while i < n:
        lt = text.find("<", i)
        if lt < 0:
            break
        if text.startswith("<!--", lt):
            end = text.index("-->", lt) + 3
            close_tails(lt)
            spans.append([lt, end, end, end, end])
            pending_tail.append(len(spans) - 1)
            i = end
        elif text.startswith("<![CDATA[", lt):
            i = text.index("]]>", lt) + 3
        elif text.startswith("<?", lt):
            end = text.index("?>", lt) + 2
            close_tails(lt)
            spans.append([lt, end, end, end, end])
            pending_tail.append(len(spans) - 1)
            i = end
        elif text.startswith("</", lt):
            end = text.index(">", lt) + 1
            close_tails(lt)
            idx = stack.pop()
            spans[idx][1] = end
            spans[idx][3] = lt
            pending_tail.append(idx)
            i = end
            if not stack:
                close_tails(end)
                break
        else:
            j = lt + 1
            quote = ""
            while j < n:
                ch = text[j]
                if quote:
                    if ch == quote:
                        quote = ""
                elif ch in "\"'":
                    quote = ch
                elif ch == ">":
                    break
                j += 1
            end = j + 1
            close_tails(lt)
            self_closing = text[j - 1] == "/"
            spans.append([lt, end, end, end, end])
            idx = len(spans) - 1
            if self_closing:
                pending_tail.append(idx)
                if not stack:
                    close_tails(end)
                    break
            else:
                stack.append(idx)
            i = end
    return [_Span(*s) for s in spans]


def _escape_text(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ConfigFile:
    """One nuget.config file, parsed with lxml and written back losslessly.

    Edits go through the methods below, which record which nodes they created or changed; ``save()``
    writes through a temporary file and ``os.replace``.
    """

    def __init__(self, path: Path, data: bytes, *, exists: bool = True) -> None:
        self.path = path
        self.exists = exists
        self._original = data
        self._encoding = "utf-8"
        self._bom = b""
        self._tree: etree._Element | None = None
        if exists:
            self._parse(data)
        # else: nuseal's own template (``new``), parsed on first use: ``nuseal verify`` without any nuget.config
        # reads nothing from the user config it would create, and so never imports lxml (issue 12).
        self.modified = False

    @property
    def _root(self) -> etree._Element:
        if self._tree is None:
            self._parse(self._original)
            assert self._tree is not None
        return self._tree

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str) -> ConfigFile:
        """Read ``path``. ``TrustConfigError`` naming the file if it is unreadable or not a nuget.config."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc
            raise TrustConfigError(f"Unable to read NuGet.Config. Path: '{p}': {reason}") from exc
        return cls(p, data)

    @classmethod
    def new(cls, path: Path | str, template: str = EMPTY_CONFIG) -> ConfigFile:
        """A config that does not exist yet; it is created by the first ``save()`` after an edit."""
        return cls(Path(path), template.encode("utf-8"), exists=False)

    def _parse(self, data: bytes) -> None:
        from lxml import etree

        if data.startswith(b"\xef\xbb\xbf"):
            self._bom, body = data[:3], data[3:]
        else:
            body = data
        m = re.match(rb'\s*<\?xml[^>]*encoding\s*=\s*["\']([A-Za-z0-9._-]+)["\']', body)
        if m:
            self._encoding = m.group(1).decode("ascii")
        try:
            self._text = body.decode(self._encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise TrustConfigError(f"NuGet.Config is not valid XML. Path: '{self.path}'. ({exc})") from exc
        # .NET's XmlReader prohibits DTDs by default, so NuGet rejects them too. Checked on the prolog before
        # libxml2 sees the text, and again on what it parsed, so the refusal never depends on libxml2's own limits.
        if prolog_declares_dtd(self._text):
            raise TrustConfigError(
                f"NuGet.Config is not valid XML (DTDs are not allowed). Path: '{self.path}'."
            )
        try:
            root = etree.fromstring(data, _parser())
        except etree.XMLSyntaxError as exc:
            raise TrustConfigError(f"NuGet.Config is not valid XML. Path: '{self.path}'. {exc}") from exc
        if declares_dtd(root):
            raise TrustConfigError(
                f"NuGet.Config is not valid XML (DTDs are not allowed). Path: '{self.path}'."
            )
        if root.tag != "configuration":
            raise TrustConfigError(
                "NuGet.Config does not contain the expected root element: 'configuration'. "
                f"Path: '{self.path}'."
            )
        root_start = self._find_root_start()
        spans = _scan_nodes(self._text, root_start)
        nodes = [n for n in root.iter() if not isinstance(n, etree._Entity)]
        if len(spans) != len(nodes):
            raise TrustConfigError(f"NuGet.Config is malformed. Path: '{self.path}'.")
        self._spans: dict[etree._Element, _Span] = dict(zip(nodes, spans, strict=True))
        self._dirty_text: set[etree._Element] = set()
        self._dirty_tail: set[etree._Element] = set()
        self._restructured: set[etree._Element] = set()
        self._newline = "\r\n" if "\r\n" in self._text else "\n"
        self._tree = root
        self._validate()

    def _find_root_start(self) -> int:
        for m in re.finditer(r"<([^!?/][^\s/>]*)", self._text):
            return m.start()
        raise TrustConfigError(f"NuGet.Config is malformed. Path: '{self.path}'.")

    # -- reading -------------------------------------------------------------------------------------
    def _section(self, name: str) -> etree._Element | None:
        if self._tree is None and not _mentions_element(self._original, name.encode()):
            # Not parsed yet (nuseal's own template, UTF-8): an element ``name`` in no namespace needs the text
            # ``<name`` (no DTD, so no entity makes one), so a template without it has no such section.
            return None
        for child in self._root:
            if child.tag == name:
                return child
        return None

    def _items(self, section: str) -> Iterator[etree._Element]:
        sec = self._section(section)
        if sec is None:
            return
        for child in sec:
            if isinstance(child.tag, str):
                yield child

    def config_values(self) -> list[tuple[str, str] | None]:
        """``<config>`` items in order: ``(key, value)`` for ``<add>``, ``None`` for ``<clear/>``."""
        out: list[tuple[str, str] | None] = []
        for item in self._items("config"):
            tag = _local(item.tag)
            if tag == "clear":
                out.append(None)
            elif tag == "add":
                key, value = item.get("key"), item.get("value")
                if key is None:
                    raise _parse_error(self.path, "Missing required attribute 'key' in element 'add'.", item)
                out.append((key, value or ""))
        return out

    def package_sources(self) -> list[PackageSource | None]:
        """``<packageSources>`` items in order; ``None`` stands for ``<clear/>``."""
        out: list[PackageSource | None] = []
        for item in self._items("packageSources"):
            tag = _local(item.tag)
            if tag == "clear":
                out.append(None)
            elif tag == "add":
                key, value = item.get("key"), item.get("value")
                if not key or value is None:
                    missing = "key" if not key else "value"
                    reason = f"Missing required attribute '{missing}' in element 'add'."
                    raise _parse_error(self.path, reason, item)
                out.append(PackageSource(key, value, item.get("protocolVersion")))
        return out

    def package_source_credentials(self) -> dict[str, dict[str, str]]:
        """``<packageSourceCredentials><SourceName><add key value/>...``: source name → {key: value}."""
        out: dict[str, dict[str, str]] = {}
        sec = self._section("packageSourceCredentials")
        if sec is None:
            return out
        for source in sec:
            if not isinstance(source.tag, str) or _local(source.tag) == "clear":
                continue
            values = {a.get("key", ""): a.get("value", "") for a in source if _local(a.tag) == "add"}
            out[_decode_element_name(source.tag)] = values
        return out

    def trusted_signers(self) -> list[TrustedSigner | None]:
        """``<trustedSigners>`` items in order; ``None`` stands for ``<clear/>``; unknown items skipped."""
        out: list[TrustedSigner | None] = []
        for item in self._items("trustedSigners"):
            tag = _local(item.tag)
            if tag == "clear":
                out.append(None)
            elif tag in ("author", "repository"):
                out.append(self._signer(item))
        return out

    def _validate(self) -> None:
        # Parse every section once so that a broken file fails when loaded, like NuGet.
        self.config_values()
        self.package_sources()
        self.trusted_signers()

    def _signer(self, el: etree._Element) -> TrustedSigner:
        kind = SignerKind.REPOSITORY if _local(el.tag) == "repository" else SignerKind.AUTHOR
        name = el.get("name")
        if not name:
            raise _parse_error(self.path, f"Missing required attribute 'name' in element '{_tag(el)}'.", el)
        service_index = el.get("serviceIndex")
        if kind is SignerKind.REPOSITORY and not service_index:
            reason = f"Missing required attribute 'serviceIndex' in element '{_tag(el)}'."
            raise _parse_error(self.path, reason, el)
        certs: list[TrustedCertificate] = []
        owners_items: list[etree._Element] = []
        for child in el:
            tag = _local(child.tag)
            if tag == "certificate":
                certs.append(self._certificate(child))
            elif tag == "owners":
                owners_items.append(child)
        if not certs:
            raise _parse_error(
                self.path,
                f"A trusted signer entry must have at least one certificate entry. (signer '{name}')", el,
            )
        owners: tuple[str, ...] = ()
        if owners_items:
            if kind is SignerKind.AUTHOR:
                raise _parse_error(self.path, "A trusted author cannot have owners.", el)
            if len(owners_items) > 1:
                raise _parse_error(
                    self.path,
                    f"The repository item with name '{name}' and service index '{service_index}' "
                    "has more than one owners item in it.", el,
                )
            owners_el = owners_items[0]
            content = owners_el.text or ""
            if len(owners_el) or not content.strip():
                raise _parse_error(
                    self.path, "Owners item must only have text content and cannot be empty.", owners_el,
                )
            # NuGet splits on ';' and trims; empty pieces are kept out (they can never match an owner).
            owners = tuple(o.strip() for o in content.split(";") if o.strip())
        index = service_index if kind is SignerKind.REPOSITORY else None
        return TrustedSigner(kind, name, tuple(certs), index, owners)

    def _certificate(self, el: etree._Element) -> TrustedCertificate:
        for attr in ("fingerprint", "hashAlgorithm", "allowUntrustedRoot"):
            # NuGet quirk: allowUntrustedRoot is a *required* attribute of <certificate>; we follow NuGet.
            if el.get(attr) is None or (attr == "fingerprint" and not el.get(attr)):
                reason = f"Missing required attribute '{attr}' in element 'certificate'."
                raise _parse_error(self.path, reason, el)
        raw_alg = el.get("hashAlgorithm", "")
        try:
            algorithm = HashAlgorithmName.parse(raw_alg)
        except ValueError:
            raise _parse_error(
                self.path, f"Certificate entry has an unsupported hash algorithm: '{raw_alg}'.", el,
            ) from None
        # NuGet parses with bool.TryParse (case-insensitive true/false); anything else means false.
        allow = (el.get("allowUntrustedRoot") or "").strip().lower() == "true"
        return TrustedCertificate(el.get("fingerprint", ""), algorithm, allow)

    # -- editing -------------------------------------------------------------------------------------
    def _indent_of(self, el: etree._Element) -> str:
        prev, parent = el.getprevious(), el.getparent()
        holder = prev.tail if prev is not None else (parent.text if parent is not None else None)
        ws = holder or ""
        return ws.rsplit("\n", 1)[-1] if "\n" in ws else ""

    def _unit(self) -> str:
        # The indentation step used by the file ("  " unless the first section says otherwise).
        first = next((c for c in self._root if isinstance(c.tag, str)), None)
        if first is not None:
            step = self._indent_of(first)
            if step and not step.strip():
                return step
        return "  "

    def _append_child(self, parent: etree._Element, child: etree._Element) -> None:
        """Append ``child`` at the end of ``parent`` with the file's indentation."""
        unit = self._unit()
        parent_indent = "" if parent is self._root else self._indent_of(parent)
        children = list(parent)
        if children:
            last = children[-1]
            child.tail = last.tail if last.tail and "\n" in last.tail else "\n" + parent_indent
            last.tail = "\n" + parent_indent + unit
            self._dirty_tail.add(last)
        else:
            parent.text = "\n" + parent_indent + unit
            child.tail = "\n" + parent_indent
            self._dirty_text.add(parent)
        parent.append(child)
        self._mark_restructured(parent)

    def _mark_restructured(self, el: etree._Element | None) -> None:
        # The element and its ancestors are re-emitted node by node; everything else is copied verbatim.
        while el is not None:
            self._restructured.add(el)
            el = el.getparent()
        self.modified = True

    def _remove_child(self, child: etree._Element) -> None:
        parent = child.getparent()
        assert parent is not None
        prev = child.getprevious()
        if prev is not None:
            prev.tail = child.tail
            self._dirty_tail.add(prev)
        else:
            parent.text = child.tail
            self._dirty_text.add(parent)
        parent.remove(child)
        self._mark_restructured(parent)

    def _ensure_section(self, name: str) -> etree._Element:
        from lxml import etree

        sec = self._section(name)
        if sec is None:
            sec = etree.Element(name)
            self._append_child(self._root, sec)
        return sec

    def _signer_element(self, signer: TrustedSigner, indent: str) -> etree._Element:
        from lxml import etree

        unit = self._unit()
        inner = indent + unit
        el = etree.Element(signer.kind.value)
        el.set("name", signer.name)
        if signer.kind is SignerKind.REPOSITORY:
            el.set("serviceIndex", signer.service_index or "")
        el.text = "\n" + inner
        children: list[etree._Element] = [self._certificate_element(c) for c in signer.certificates]
        if signer.owners:
            owners = etree.Element("owners")
            owners.text = ";".join(signer.owners)
            children.append(owners)
        for k, child in enumerate(children):
            child.tail = "\n" + (inner if k < len(children) - 1 else indent)
            el.append(child)
        return el

    @staticmethod
    def _certificate_element(cert: TrustedCertificate) -> etree._Element:
        from lxml import etree

        el = etree.Element("certificate")
        el.set("fingerprint", cert.fingerprint)
        el.set("hashAlgorithm", cert.algorithm.value)
        el.set("allowUntrustedRoot", "true" if cert.allow_untrusted_root else "false")
        return el

    def _find_signer_element(self, signer: TrustedSigner) -> etree._Element | None:
        for item in self._items("trustedSigners"):
            if _local(item.tag) not in ("author", "repository"):
                continue
            if self._signer(item).merge_key == signer.merge_key:
                return item
        return None

    def add_trusted_signer(self, signer: TrustedSigner) -> None:
        """Append a new ``<author>``/``<repository>`` to ``<trustedSigners>`` (creating the section)."""
        section = self._ensure_section("trustedSigners")
        indent = self._indent_of(section) + self._unit()
        self._append_child(section, self._signer_element(signer, indent))

    def update_trusted_signer(self, signer: TrustedSigner) -> None:
        """Replace the certificates and owners of the matching item in place (NuGet ``AddOrUpdate``).

        Certificates already present (same fingerprint and algorithm, ordinal) are left as written; others
        are removed or appended. ``KeyError`` if the file has no such signer.
        """
        from lxml import etree

        el = self._find_signer_element(signer)
        if el is None:
            raise KeyError(signer.name)
        current = self._signer(el)
        wanted = {(c.algorithm, c.fingerprint): c for c in signer.certificates}
        for child in list(el):
            tag = _local(child.tag)
            if tag == "certificate":
                cert = self._certificate(child)
                if wanted.get((cert.algorithm, cert.fingerprint)) != cert:
                    self._remove_child(child)
            elif tag == "owners" and tuple(current.owners) != tuple(signer.owners):
                self._remove_child(child)
        kept = {(c.algorithm, c.fingerprint) for c in self._signer_certs(el)}
        for cert in signer.certificates:
            if (cert.algorithm, cert.fingerprint) not in kept:
                self._append_child(el, self._certificate_element(cert))
        if signer.owners and not any(_local(c.tag) == "owners" for c in el):
            owners = etree.Element("owners")
            owners.text = ";".join(signer.owners)
            self._append_child(el, owners)

    def _signer_certs(self, el: etree._Element) -> list[TrustedCertificate]:
        return [self._certificate(c) for c in el if _local(c.tag) == "certificate"]

    def remove_trusted_signer(self, signer: TrustedSigner) -> bool:
        """Remove the matching item; ``False`` if this file does not hold it."""
        el = self._find_signer_element(signer)
        if el is None:
            return False
        self._remove_child(el)
        return True

    def add_package_source(self, name: str, url: str, protocol_version: str | None = None) -> None:
        """Append ``<add key value [protocolVersion]/>`` to ``<packageSources>``."""
        from lxml import etree

        section = self._ensure_section("packageSources")
        el = etree.Element("add")
        el.set("key", name)
        el.set("value", url)
        if protocol_version:
            el.set("protocolVersion", protocol_version)
        self._append_child(section, el)

    def remove_package_source(self, name: str) -> bool:
        """Remove the ``<add key=name>`` source (key compared case-insensitively, as NuGet's sources are)."""
        for item in self._items("packageSources"):
            if _local(item.tag) == "add" and (item.get("key") or "").lower() == name.lower():
                self._remove_child(item)
                return True
        return False

    def set_config_value(self, key: str, value: str) -> None:
        """Set ``<config><add key value/>``: changes the attribute in place, or appends a new item."""
        from lxml import etree

        for item in self._items("config"):
            if _local(item.tag) == "add" and item.get("key") == key:
                if item.get("value") != value:
                    item.set("value", value)
                    # Only this element is re-serialized; mark its parent so the rest is copied.
                    self._spans.pop(item, None)
                    self._mark_restructured(item.getparent())
                return
        section = self._ensure_section("config")
        el = etree.Element("add")
        el.set("key", key)
        el.set("value", value)
        self._append_child(section, el)

    # -- writing -------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The file's bytes: the original ones if unmodified, else original bytes with edits spliced in."""
        if not self.modified:
            return self._original
        root_span = self._spans[self._root]
        text = self._text[: root_span.start] + self._emit(self._root) + self._text[root_span.end:]
        return self._bom + text.encode(self._encoding)

    def _emit(self, node: etree._Element) -> str:
        span = self._spans.get(node)
        if span is None:
            return self._serialize_new(node)
        if node not in self._restructured:
            return self._text[span.start: span.end]
        if span.content_start == span.end:  # was self-closing: rewrite as open + close tags
            head = self._text[span.start: span.end].rstrip()[:-2].rstrip() + ">"
            tail = f"</{_tag(node)}>"
        else:
            head = self._text[span.start: span.content_start]
            tail = self._text[span.content_end: span.end]
        out = [head, self._text_of(node)]
        for child in node:
            out.append(self._emit(child))
            out.append(self._tail_of(child))
        out.append(tail)
        return "".join(out)

    def _text_of(self, node: etree._Element) -> str:
        span = self._spans.get(node)
        if span is not None and node not in self._dirty_text:
            children = list(node)
            first = self._spans.get(children[0]) if children else None
            end = first.start if first is not None else span.content_end
            if not children or first is not None:
                return self._text[span.content_start: end]
        return _escape_text(node.text or "").replace("\n", self._newline)

    def _tail_of(self, node: etree._Element) -> str:
        span = self._spans.get(node)
        if span is not None and node not in self._dirty_tail:
            return self._text[span.end: span.tail_end]
        return _escape_text(node.tail or "").replace("\n", self._newline)

    def _serialize_new(self, node: etree._Element) -> str:
        from lxml import etree

        s = etree.tostring(node, with_tail=False, encoding="unicode")
        # XDocument (NuGet) writes empty elements as "<x a="b" />"; lxml writes "<x a="b"/>".
        s = re.sub(r"(?<! )/>", " />", s)
        return s.replace("\n", self._newline)

    def save(self) -> None:
        """Write through a temporary file in the same directory, then rename. No-op when unmodified."""
        if not self.modified and self.exists:
            return
        data = self.to_bytes()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # only when saving: keeps it out of nuseal verify's start-up

        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.exists = True
        self._original = data
        self._parse(data)
        self.modified = False


def config_chain(cwd: Path, home: Path | None) -> list[Path]:
    """NuGet's default lookup (spec §7.4): ``nuget.config`` from ``cwd`` up to the root (closest first),
    then the user config ``~/.nuget/NuGet/NuGet.Config`` and ``~/.nuget/config/*.config``.

    Returns existing files only, except the user config which is always listed (it is where NuGet adds).
    Machine-wide configs (``/etc/opt/NuGet/Config``) are not read: we do not model them.
    """
    out: list[Path] = []
    current = cwd.resolve()
    while True:
        for name in CONFIG_FILE_NAMES:
            candidate = current / name
            if candidate.is_file():
                out.append(candidate)
                break
        if current.parent == current:
            break
        current = current.parent
    if home is not None:
        user = home / USER_CONFIG_RELATIVE
        if user not in out:
            out.append(user)
        extra_dir = home / ".nuget" / "config"
        if extra_dir.is_dir():
            out.extend(sorted(p for p in extra_dir.iterdir()
                              if p.suffix.lower() == ".config" and p.name != "NuGet.Config"))
    return out


class NuGetSettings:
    """The merged view over config files ordered closest first (NuGet ``Settings``)."""

    def __init__(self, files: list[ConfigFile], *, output: ConfigFile | None = None) -> None:
        if not files:
            raise ValueError("NuGetSettings needs at least one config file")
        self.files = files
        self._output = output

    @classmethod
    def load(cls, *, configfile: Path | None = None, cwd: Path | None = None,
             home: Path | None = None) -> NuGetSettings:
        """``configfile`` alone (``--configfile``), or the chain from ``cwd`` plus the user config in
        ``home``.

        A missing ``--configfile`` is an error (NuGet: "File does not exist"); a missing user config is
        created with NuGet's default content on the first write.
        """
        if configfile is not None:
            if not configfile.is_file():
                raise TrustConfigError(f"File '{configfile}' does not exist.")
            return cls([ConfigFile.load(configfile)])
        if cwd is None:
            raise ValueError("pass either configfile or cwd")
        files: list[ConfigFile] = []
        user = home / USER_CONFIG_RELATIVE if home is not None else None
        for path in config_chain(cwd, home):
            if path == user and not path.is_file():
                files.append(ConfigFile.new(path, DEFAULT_USER_CONFIG))
            else:
                files.append(ConfigFile.load(path))
        user_file = next((f for f in files if f.path == user), None)
        return cls(files, output=user_file)

    def _merge(self, items_of: Callable[[ConfigFile], Sequence[_T | None]]) -> list[tuple[_T, ConfigFile]]:
        """NuGet's section merge: furthest file first; ``<clear/>`` drops everything merged so far; an item
        with the same key replaces the earlier one and moves to the end."""
        merged: dict[object, tuple[_T, ConfigFile]] = {}
        for f in reversed(self.files):
            for item in items_of(f):
                if item is None:
                    merged.clear()
                    continue
                key = _merge_key(item)
                merged.pop(key, None)
                merged[key] = (item, f)
        return list(merged.values())

    def trusted_signers(self) -> list[TrustedSigner]:
        """Merged ``<trustedSigners>``: authors keyed by name, repositories by service index."""
        return [s for s, _ in self.trusted_signers_with_origin()]

    def trusted_signers_with_origin(self) -> list[tuple[TrustedSigner, ConfigFile]]:
        return self._merge(ConfigFile.trusted_signers)

    def package_sources(self) -> list[PackageSource]:
        return [s for s, _ in self._merge(ConfigFile.package_sources)]

    def config_value(self, key: str) -> str | None:
        for (k, v), _ in self._merge(ConfigFile.config_values):
            if k == key:
                return v
        return None

    def signature_validation_mode(self) -> SignatureValidationMode:
        """``accept`` unless ``signatureValidationMode`` says ``require`` (case-insensitive).

        NuGet quirk: an unparseable value silently means ``accept``; we do the same.
        """
        value = (self.config_value("signatureValidationMode") or "").strip().lower()
        return SignatureValidationMode.REQUIRE if value == "require" else SignatureValidationMode.ACCEPT

    def package_source(self, name: str) -> PackageSource | None:
        """The enabled source named ``name`` (case-insensitive, as NuGet's source names are)."""
        for src in self.package_sources():
            if src.name.lower() == name.lower():
                return src
        return None

    def output_file(self, section: str) -> ConfigFile:
        """Where NuGet adds a new item: the closest file whose section has ``<clear/>``, else the furthest
        writable file (normally the user config)."""
        for f in self.files:
            sec = f._section(section)
            if sec is not None and any(_local(c.tag) == "clear" for c in sec):
                return f
        if self._output is not None:
            return self._output
        return self.files[-1]

    def add_trusted_signer(self, signer: TrustedSigner) -> ConfigFile:
        target = self.output_file("trustedSigners")
        target.add_trusted_signer(signer)
        return target

    def update_trusted_signer(self, signer: TrustedSigner) -> ConfigFile:
        """Update the item in the file that holds it (NuGet updates in place)."""
        for existing, origin in self.trusted_signers_with_origin():
            if existing.merge_key == signer.merge_key:
                origin.update_trusted_signer(signer)
                return origin
        return self.add_trusted_signer(signer)

    def remove_trusted_signer(self, signer: TrustedSigner) -> None:
        """Remove the item from its file, and any item it shadows in further files (NuGet ``MergedWith``)."""
        for f in self.files:
            f.remove_trusted_signer(signer)

    def save(self) -> None:
        for f in self.files:
            f.save()


def _merge_key(item: object) -> object:
    if isinstance(item, TrustedSigner):
        return item.merge_key
    if isinstance(item, PackageSource):
        return ("source", item.name.lower())
    if isinstance(item, tuple):
        return ("config", item[0])
    raise TypeError(type(item))


def encode_credentials_element_name(source_name: str) -> str:
    """The element name NuGet uses for a source under ``<packageSourceCredentials>``."""
    return _encode_element_name(source_name)


#: What ``\s`` matches in a bytes regular expression, and the other two bytes that may end an element's name.
_AFTER_NAME = frozenset(b" \t\n\r\f\v/>")


def _mentions_element(text: bytes, name: bytes) -> bool:
    """``re.search(rb"<" + re.escape(name) + rb"[\\s/>]", text) is not None`` without compiling a pattern per section
    name at every start-up (issue 12; tests/unit/trust/test_mentions_element.py compares both)."""
    needle = b"<" + name
    at = text.find(needle)
    while at != -1:
        end = at + len(needle)
        if end < len(text) and text[end] in _AFTER_NAME:
            return True
        at = text.find(needle, at + 1)
    return False
