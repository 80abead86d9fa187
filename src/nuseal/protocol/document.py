"""The base of every V3 JSON model: parse (bytes, text or a decoded object) and emit, plus the field types.

Parsing tolerates fields it does not know (real feeds add their own) and names the document, its URL and the
JSON path of the first bad value in a ``ProtocolError``; pydantic's error never escapes. Emitting gives
NuGet's spelling (``@id``, ``camelCase``), leaves out what is ``None`` (NuGet omits absent optional fields)
and keeps the declared field order, so the output is stable. ``parse(emit(x)) == x`` for every model.

Field types with a NuGet meaning are parsed into nuseal types and written back as NuGet writes them:
``Version`` (full string, with metadata), ``NormalizedVersion`` (page bounds), ``LowerVersion`` (flat
container), ``Range`` (``[1.0.0, )``), ``Timestamp`` (``2024-02-23T00:00:00.0000000Z``, nuget.org's form) and
``OneOrMany`` (a string or an array of strings, as ``authors``/``tags``/``owners``/``@type`` may be).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from nuseal.errors import ProtocolError
from nuseal.versioning import NuGetVersion, VersionRange


class Model(BaseModel):
    """A JSON object of the V3 protocol: camelCase on the wire, snake_case in Python, immutable."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class Document(Model):
    """A whole V3 document (what one URL returns)."""

    #: What the document is called in error messages ("registration index").
    KIND: ClassVar[str] = "document"

    @classmethod
    def parse(cls, data: bytes | str | Mapping[str, Any], *, source: str) -> Self:
        """The document in ``data`` fetched from ``source`` (a URL, or any name for messages).

        ``ProtocolError`` naming the document, ``source`` and the JSON path of the first bad value when
        ``data`` is not JSON, not an object, or does not have the document's shape.
        """
        where = f"The {cls.KIND} at '{source}'"
        if isinstance(data, Mapping):
            decoded: object = data
        else:
            try:
                decoded = json.loads(data)
            except (ValueError, UnicodeDecodeError) as exc:
                raise ProtocolError(f"{where} is not valid JSON: {exc}", document=where) from None
        if not isinstance(decoded, Mapping):
            raise ProtocolError(f"{where} is not a JSON object.", document=where)
        try:
            return cls.model_validate(decoded)
        except ValidationError as exc:
            raise _protocol_error(exc, where) from None

    def emit(self) -> dict[str, Any]:
        """The document as NuGet writes it, ready for ``json.dumps``."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_json(self) -> bytes:
        """The UTF-8 JSON body to serve (compact, field order as declared)."""
        return json.dumps(self.emit(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.replace("_", "a").replace("@", "a").isalnum():
            text += f".{part}" if text else part
        else:  # dictionary keys such as hash OIDs
            text += f"[{part!r}]"
    return text


def _protocol_error(exc: ValidationError, where: str) -> ProtocolError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = _path(tuple(first["loc"]))
    more = f" ({len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    if first["type"] == "missing":
        return ProtocolError(f"{where} is invalid: '{field}' is missing{more}.", document=where, field=field)
    message = first["msg"]
    if first["type"] == "value_error":  # our own validators: the message already names the value
        message = message.removeprefix("Value error, ")
    else:
        shown = repr(first["input"])
        message += f" (found {shown if len(shown) <= 60 else shown[:57] + '...'})"
    message = message[0].lower() + message[1:]
    at = f" at '{field}'" if field else ""
    return ProtocolError(f"{where} is invalid{at}: {message}{more}.", document=where, field=field)


# --- field types ------------------------------------------------------------------------------------------

def _to_version(value: object) -> NuGetVersion:
    if isinstance(value, NuGetVersion):
        return value
    if not isinstance(value, str):
        raise ValueError("a version must be a string")
    return NuGetVersion.parse(value)


def _to_range(value: object) -> VersionRange:
    if isinstance(value, VersionRange):
        return value
    if not isinstance(value, str):
        raise ValueError("a version range must be a string")
    return VersionRange.parse(value)


def _to_timestamp(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not an ISO 8601 date and time") from None
    if not isinstance(value, datetime):
        raise ValueError("a date and time must be an ISO 8601 string")
    # NuGet's documents carry an offset; a value without one is read as UTC rather than local time.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _emit_timestamp(value: datetime) -> str:
    # nuget.org's form: seven fractional digits and 'Z' (.NET's "o" format in UTC).
    utc = value.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


def _to_one_or_many(value: object) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return list(value)
    raise ValueError("must be a string or an array of strings")


_STRING = {"type": "string"}

#: A version as written in the document, build metadata included (``catalogEntry.version``, search).
Version = Annotated[NuGetVersion, PlainValidator(_to_version), PlainSerializer(lambda v: v.full, return_type=str),
                    WithJsonSchema({**_STRING, "description": "NuGet version (full form)"})]
#: A normalized version without metadata (registration page ``lower``/``upper``).
NormalizedVersion = Annotated[NuGetVersion, PlainValidator(_to_version),
                              PlainSerializer(lambda v: v.normalized, return_type=str),
                              WithJsonSchema({**_STRING, "description": "NuGet version (normalized)"})]
#: A normalized, lower-cased version (the flat container's ``versions``).
LowerVersion = Annotated[NuGetVersion, PlainValidator(_to_version), PlainSerializer(lambda v: v.lower, return_type=str),
                         WithJsonSchema({**_STRING, "description": "NuGet version (normalized, lower case)"})]
#: A version range, written normalized (``[1.0.0, )``).
Range = Annotated[VersionRange, PlainValidator(_to_range), PlainSerializer(lambda r: r.normalized, return_type=str),
                  WithJsonSchema({**_STRING, "description": "NuGet version range"})]
#: A date and time with an offset, written as nuget.org writes it.
Timestamp = Annotated[datetime, PlainValidator(_to_timestamp), PlainSerializer(_emit_timestamp, return_type=str),
                      WithJsonSchema({**_STRING, "format": "date-time"})]
#: A string or an array of strings (kept as found, so a document round-trips).
OneOrMany = Annotated[str | list[str], PlainValidator(_to_one_or_many),
                      WithJsonSchema({"anyOf": [_STRING, {"type": "array", "items": _STRING}]})]


def as_list(value: str | list[str] | None) -> list[str]:
    """``OneOrMany`` as a list (a single string is one item, ``None`` none)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
