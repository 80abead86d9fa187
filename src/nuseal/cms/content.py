"""The signed content of a NuGet signature: the ``Version:1`` / ``<oid>-Hash:<b64>`` file (spec §3).

Written with LF line endings, UTF-8 without BOM. Read as NuGet's ``KeyPairFileReader`` reads it: sections of
``key:value`` lines ended by an empty line, any of ``\\n``, ``\\r\\n``, ``\\r`` as line breaks.
"""

from __future__ import annotations

import base64
import binascii
import re

from nuseal import oids
from nuseal.codes import Messages, NuCode
from nuseal.errors import SignatureFormatError
from nuseal.record import Struct

_KEY = re.compile(r"^[a-zA-Z0-9.\-/]+$")


class SignatureContent(Struct, frozen=True):
    """The package hash a signature commits to: the hash algorithm OID and the raw digest."""

    hash_algorithm_oid: str
    hash_value: bytes

    @property
    def hash_name(self) -> str:
        """hashlib name of the package hash algorithm (``sha256``, ``sha384``, ``sha512``)."""
        return oids.SHA2_HASHES[self.hash_algorithm_oid]

    def to_bytes(self) -> bytes:
        """The exact bytes NuGet signs (85 bytes for SHA-256)."""
        if self.hash_algorithm_oid not in oids.SHA2_HASHES:
            raise ValueError(f"unsupported package hash algorithm OID {self.hash_algorithm_oid}")
        encoded = base64.b64encode(self.hash_value).decode("ascii")
        return f"Version:1\n\n{self.hash_algorithm_oid}-Hash:{encoded}\n\n".encode()

    @classmethod
    def parse(cls, data: bytes) -> SignatureContent:
        """Parse signed content; ``SignatureFormatError`` NU3000 (grammar) or NU3007 (version)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000) from exc
        text = text.removeprefix("\ufeff")
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        # A trailing "" from split means the text ended with a line break; it is not a line of its own.
        if lines and lines[-1] == "":
            lines.pop()
        position = 0
        first, position = _read_section(lines, position)
        if "Version" not in first:
            raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
        if first["Version"] != "1":
            raise SignatureFormatError(Messages.VERSION_UNSUPPORTED, NuCode.NU3007)
        second, position = _read_section(lines, position)
        if not second:
            raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
        # NuGet takes the first property whose key is an allowed "<oid>-Hash" (spec §3); others are ignored.
        for key, value in second.items():
            oid = key.removesuffix("-Hash")
            if key.endswith("-Hash") and oid in oids.SHA2_HASHES:
                try:
                    digest = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError) as exc:
                    raise SignatureFormatError(Messages.HASH_NOT_FOUND, NuCode.NU3000) from exc
                return cls(oid, digest)
        raise SignatureFormatError(Messages.HASH_NOT_FOUND, NuCode.NU3000)


def _read_section(lines: list[str], position: int) -> tuple[dict[str, str], int]:
    """Read one section starting at ``position``; it must end with an empty line (EOF inside is invalid)."""
    section: dict[str, str] = {}
    while True:
        if position >= len(lines):
            raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
        line = lines[position]
        position += 1
        if line == "":
            # The empty line ends the section; an empty line where a section starts is an empty section.
            return section, position
        key, sep, value = line.partition(":")
        if not sep or not key or not value or not _KEY.match(key) or key in section:
            raise SignatureFormatError(Messages.CONTENT_INVALID, NuCode.NU3000)
        section[key] = value
