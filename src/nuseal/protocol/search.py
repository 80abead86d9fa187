"""Search (``SearchQueryService``) and autocomplete (``SearchAutocompleteService``) responses (§E.5).

Search: ``{totalHits, data: [result]}``, one result per package id with the latest version's metadata, its
``versions`` (each with the registration leaf ``@id`` and downloads) and ``packageTypes``. Autocomplete
answers either package ids (``{totalHits, data: [id]}``) or the versions of one id (``{data: [version]}``).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, JsonValue

from nuseal.protocol.document import Document, Model, OneOrMany, Version
from nuseal.protocol.registration import Deprecation, Vulnerability


class SearchResultVersion(Model):
    url: str = Field(validation_alias="@id", serialization_alias="@id")
    version: Version
    downloads: int


class PackageType(Model):
    name: str


class SearchResult(Model):
    """One package id; the metadata is the latest matching version's (``owners`` are account names)."""

    url: str | None = Field(default=None, validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    registration: str | None = None
    id: str
    version: Version
    description: str | None = None
    summary: str | None = None
    title: str | None = None
    icon_url: str | None = None
    license_url: str | None = None
    project_url: str | None = None
    tags: OneOrMany | None = None
    authors: OneOrMany | None = None
    owners: OneOrMany | None = None
    total_downloads: int | None = None
    verified: bool | None = None
    # Required since SearchQueryService/3.5.0; older servers leave it out.
    package_types: list[PackageType] = Field(default_factory=list)
    versions: list[SearchResultVersion]
    deprecation: Deprecation | None = None
    vulnerabilities: list[Vulnerability] | None = None


class SearchResponse(Document):
    KIND: ClassVar[str] = "search response"

    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")
    total_hits: int
    data: list[SearchResult]


class AutocompleteIds(Document):
    """Package ids matching a query."""

    KIND: ClassVar[str] = "autocomplete response"

    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")
    total_hits: int
    data: list[str]


class AutocompleteVersions(Document):
    """The versions of one package id (``?id=``); build metadata included when ``semVerLevel=2.0.0``."""

    KIND: ClassVar[str] = "autocomplete versions response"

    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")
    data: list[Version]
