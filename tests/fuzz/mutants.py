"""Mutants of signed packages for the robustness tests: byte flips, truncations and structural edits, by region.

A region is a part of the file NuGet reads differently: local file headers, file data, the signature entry's
local header, the CMS inside ``.signature.p7s`` (one region per DER field), central directory headers and the
end of central directory record. Every mutation is described by plain integers so that both hypothesis and a
seeded random campaign can drive it, and the same integers always give the same bytes.

CMS structural edits (drop, duplicate or cut a DER field) re-encode every enclosing length and write the signature
back with consistent zip sizes and offsets, so the edited DER is what the verifier parses, not a zip-level error.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from nuseal.package.zipformat import SIGNATURE_FILE_NAME, read_layout, read_local_header

REGIONS = ("local-header", "file-data", "signature-entry", "cms", "central-directory", "eocd")


# --- a small DER tree that can be edited and re-encoded -----------------------------------------------------------


@dataclass
class Node:
    """One TLV. ``children`` is set for constructed values and for OCTET STRINGs that wrap DER (encapsulated)."""

    tag: bytes
    content: bytes
    offset: int  # of the tag byte, relative to the start of the parsed buffer
    header_size: int
    children: list[Node] | None = None
    encapsulated: bool = False

    def encode(self) -> bytes:
        body = self.content if self.children is None else b"".join(c.encode() for c in self.children)
        return self.tag + _der_length(len(body)) + body

    def walk(self) -> list[Node]:
        nodes = [self]
        for child in self.children or ():
            nodes.extend(child.walk())
        return nodes


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _read_tlv(data: bytes, pos: int) -> tuple[bytes, int, int] | None:
    """(tag bytes, content start, content end) of the TLV at ``pos``, or None when it is not definite DER."""
    start = pos
    if pos >= len(data):
        return None
    pos += 1
    if data[start] & 0x1F == 0x1F:
        while pos < len(data) and data[pos] & 0x80:
            pos += 1
        pos += 1
    if pos >= len(data):
        return None
    tag = data[start:pos]
    first = data[pos]
    pos += 1
    if first < 0x80:
        length = first
    elif first == 0x80 or first - 0x80 > 4:
        return None
    else:
        count = first & 0x7F
        if pos + count > len(data):
            return None
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        return None
    return tag, pos, pos + length


def _parse_all(data: bytes, base: int) -> list[Node] | None:
    nodes: list[Node] = []
    pos = 0
    while pos < len(data):
        parsed = _read_tlv(data, pos)
        if parsed is None:
            return None
        tag, start, end = parsed
        nodes.append(_node(tag, data[start:end], base + pos, start - pos))
        pos = end
    return nodes


def _node(tag: bytes, content: bytes, offset: int, header_size: int) -> Node:
    node = Node(tag, content, offset, header_size)
    if tag[0] & 0x20:
        node.children = _parse_all(content, offset + header_size)
    elif tag == b"\x04" and content[:1] == b"\x30":
        inner = _parse_all(content, offset + header_size)
        if inner:
            node.children, node.encapsulated = inner, True
    return node


def parse_der(data: bytes) -> Node:
    parsed = _read_tlv(data, 0)
    if parsed is None or parsed[2] != len(data):
        raise ValueError("not one definite-length DER value")
    tag, start, end = parsed
    return _node(tag, data[start:end], 0, start)


# --- package layout ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    """A signed package's bytes and where each region lies (absolute [start, end) ranges)."""

    path: Path
    data: bytes
    ranges: dict[str, tuple[tuple[int, int], ...]]
    signature_offset: int  # start of .signature.p7s data
    signature: bytes
    cms_nodes: tuple[tuple[int, int, int], ...] = field(default=())  # (offset, header size, total) in the signature


@cache
def load_package(path: Path) -> Package:
    data = Path(path).read_bytes()
    f = io.BytesIO(data)
    layout = read_layout(f)
    ranges: dict[str, list[tuple[int, int]]] = {name: [] for name in REGIONS}
    signature_offset, signature = -1, b""
    for header in layout.headers:
        local = read_local_header(f, header.local_header_offset)
        head = (local.position, local.data_offset)
        ranges["central-directory"].append((header.position, header.end))
        if header.name == SIGNATURE_FILE_NAME:
            ranges["signature-entry"].append(head)
            signature_offset = local.data_offset
            signature = data[signature_offset : signature_offset + local.uncompressed_size]
            continue
        ranges["local-header"].append(head)
        if header.compressed_size:
            ranges["file-data"].append((local.data_offset, local.data_offset + header.compressed_size))
    ranges["eocd"].append((layout.eocd.position, len(data)))
    if signature_offset < 0:
        raise ValueError(f"{path} is not signed")
    nodes = tuple((n.offset, n.header_size, len(n.encode())) for n in parse_der(signature).walk())
    frozen = {name: tuple(spans) for name, spans in ranges.items()}
    return Package(Path(path), data, frozen, signature_offset, signature, nodes)


def regions_of(package: Package) -> tuple[str, ...]:
    """The regions this package has (an empty package has no file data, for example)."""
    return tuple(name for name in REGIONS if name == "cms" or package.ranges[name])


# --- mutations -----------------------------------------------------------------------------------------------------


def flip(package: Package, region: str, pick: int, at: int, mask: int) -> bytes:
    """XOR one byte (``mask`` in 1..255) in ``region``. ``pick`` chooses the span (or CMS field), ``at`` the byte;
    CMS flips hit the field's tag and length bytes half the time, its first content bytes otherwise."""
    offset = _offset(package, region, pick, at)
    data = bytearray(package.data)
    data[offset] ^= mask or 1
    return bytes(data)


def truncate(package: Package, region: str, pick: int, at: int) -> bytes:
    """The file cut just before a byte of ``region``."""
    return package.data[: _offset(package, region, pick, at)]


def splice(package: Package, region: str, pick: int, at: int, size: int, insert: bool) -> bytes:
    """Delete ``size`` bytes at a byte of ``region``, or insert ``size`` copies of the byte found there."""
    offset = _offset(package, region, pick, at)
    data = package.data
    if insert:
        return data[:offset] + data[offset : offset + 1] * size + data[offset:]
    return data[:offset] + data[offset + size :]


def edit_cms(package: Package, pick: int, action: int, at: int) -> bytes:
    """A structural CMS edit written back as a consistent zip: 0 drops a field, 1 duplicates it, 2 cuts its content
    at ``at``, 3 replaces its content with a shifted copy of itself (same length)."""
    tree = parse_der(package.signature)
    nodes = tree.walk()
    index = pick % len(nodes)
    target = nodes[index]
    parent = next((n for n in nodes if n.children and any(c is target for c in n.children)), None)
    action %= 4
    if action in (0, 1) and parent is not None and parent.children is not None:
        position = next(i for i, c in enumerate(parent.children) if c is target)
        if action == 0:
            del parent.children[position]
        else:
            parent.children.insert(position, _copy(target))
    else:
        encoded = target.encode()
        parsed = _read_tlv(encoded, 0)
        assert parsed is not None
        raw = encoded[parsed[1] : parsed[2]]
        target.children = None
        if action == 2 or not raw:
            target.content = raw[: at % (len(raw) + 1)]
        else:
            shift = 1 + at % max(1, len(raw) - 1)
            target.content = raw[shift:] + raw[:shift]
    return replace_signature(package, tree.encode())


def _copy(node: Node) -> Node:
    return Node(node.tag, node.content, node.offset, node.header_size,
                [_copy(c) for c in node.children] if node.children is not None else None, node.encapsulated)


def _offset(package: Package, region: str, pick: int, at: int) -> int:
    if region == "cms":
        node_offset, header, total = package.cms_nodes[pick % len(package.cms_nodes)]
        if at % 2 == 0:
            inner = at // 2 % header
        else:
            inner = header + (at // 2) % max(1, min(total - header, 16)) if total > header else at // 2 % header
        return package.signature_offset + node_offset + inner
    spans = package.ranges[region]
    start, end = spans[pick % len(spans)]
    return start + at % (end - start)


def replace_signature(package: Package, signature: bytes) -> bytes:
    """The package with new ``.signature.p7s`` bytes: LFH and CD sizes/CRC, later LFH offsets and the EOCD fixed."""
    data = package.data
    f = io.BytesIO(data)
    layout = read_layout(f)
    entry = next(h for h in layout.headers if h.name == SIGNATURE_FILE_NAME)
    local = read_local_header(f, entry.local_header_offset)
    old_size = local.uncompressed_size
    delta = len(signature) - old_size
    start = local.data_offset
    out = bytearray(data[:start] + signature + data[start + old_size :])
    crc = zlib.crc32(signature)
    struct.pack_into("<III", out, local.position + 14, crc, len(signature), len(signature))

    def moved(position: int) -> int:
        return position + delta if position >= start + old_size else position

    for header in layout.headers:
        position = moved(header.position)
        if header is entry:
            struct.pack_into("<III", out, position + 16, crc, len(signature), len(signature))
        if header.local_header_offset >= start + old_size:
            struct.pack_into("<I", out, position + 42, header.local_header_offset + delta)
    eocd = moved(layout.eocd.position)
    if layout.eocd.cd_offset >= start + old_size:
        struct.pack_into("<I", out, eocd + 16, layout.eocd.cd_offset + delta)
    return bytes(out)


# --- targeted CMS edits (strictness tests) -------------------------------------------------------------------------


def signed_data(tree: Node) -> Node:
    """ContentInfo → [0] → SignedData."""
    assert tree.children is not None and tree.children[1].children is not None
    return tree.children[1].children[0]


def signer_infos(data: Node) -> Node:
    assert data.children is not None
    return data.children[-1]


def first_signer(data: Node) -> Node:
    infos = signer_infos(data)
    assert infos.children is not None
    return infos.children[0]


def unsigned_attribute_value(signer: Node, oid_der: bytes) -> Node:
    """The first value of the signer's unsigned attribute whose type encodes as ``oid_der`` (tag and length too)."""
    assert signer.children is not None
    unsigned = next(c for c in signer.children if c.tag == b"\xa1")
    for attribute in unsigned.children or ():
        assert attribute.children is not None
        if attribute.children[0].encode() == oid_der:
            values = attribute.children[1].children
            assert values
            return values[0]
    raise KeyError(oid_der.hex())


def oid_der(dotted: str) -> bytes:
    from asn1crypto import core

    return bytes(core.ObjectIdentifier(dotted).dump())


def insert_signature_extra(package: Package, extra: bytes, *, local: bool, central: bool,
                           sizes: int | None = None) -> bytes:
    """The package with ``extra`` appended to the signature entry's local and/or central extra field (later
    offsets and the EOCD fixed), and optionally both size fields of both headers set to ``sizes``."""
    data = package.data
    f = io.BytesIO(data)
    layout = read_layout(f)
    entry = next(h for h in layout.headers if h.name == SIGNATURE_FILE_NAME)
    lfh = read_local_header(f, entry.local_header_offset)
    out = bytearray(data)
    grow_local = len(extra) if local else 0
    # Central header first (it lies after the local one), so the local insertion does not move its position.
    if central:
        insert_at = entry.position + 46 + len(entry.name) + len(entry.extra)
        out[insert_at:insert_at] = extra
        struct.pack_into("<H", out, entry.position + 30, len(entry.extra) + len(extra))
    if local:
        insert_at = lfh.position + 30 + len(lfh.name) + len(lfh.extra)
        out[insert_at:insert_at] = extra
        struct.pack_into("<H", out, lfh.position + 28, len(lfh.extra) + len(extra))
    grow_central = len(extra) if central else 0
    for header in layout.headers:
        position = header.position + grow_local + (grow_central if header.position > entry.position else 0)
        if header.local_header_offset > lfh.position:
            struct.pack_into("<I", out, position + 42, header.local_header_offset + grow_local)
        if header is entry and sizes is not None:
            struct.pack_into("<II", out, position + 20, sizes, sizes)
    if sizes is not None:
        struct.pack_into("<II", out, lfh.position + 18, sizes, sizes)
    eocd = layout.eocd.position + grow_local + grow_central
    struct.pack_into("<II", out, eocd + 12, layout.eocd.cd_size + grow_central, layout.eocd.cd_offset + grow_local)
    return bytes(out)
