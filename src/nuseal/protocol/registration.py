"""Package metadata (``RegistrationsBaseUrl``): registration index, page, leaf and catalog entry (§E.4).

``{@id}/{lower id}/index.json`` is a ``RegistrationIndex`` of pages. A page either inlines its leaves
(``items``, with ``parent``) or only gives its bounds and ``@id``, which then returns a ``RegistrationPage``
document with the leaves. Each leaf item carries the package's ``catalogEntry`` (the metadata, dependency
groups, deprecation, vulnerabilities) and its ``packageContent`` URL. ``{@id}/{lower id}/{lower version}.json``
is a ``RegistrationLeaf`` document. Field names and optionality follow NuGet's API reference; nuget.org's
extra fields (``commitId``, ``@context``, ...) are read when present and written back when set.

Listing: ``listed`` absent means listed; nuget.org also marks unlisted versions with a ``published`` year of
1900, which ``CatalogEntry.is_listed`` honours when ``listed`` is absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self

from pydantic import Field, JsonValue, field_serializer, field_validator, model_validator

from nuseal.protocol.document import (
    Document,
    Model,
    NormalizedVersion,
    OneOrMany,
    Range,
    Timestamp,
    Version,
)
from nuseal.versioning import VersionRange

_UNLISTED_YEAR = 1900


class Dependency(Model):
    """One dependency; ``range`` ``None`` (absent or empty in the document) means any version."""

    url: str | None = Field(default=None, validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    id: str
    range: Range | None = None
    registration: str | None = None

    @field_validator("range", mode="before")
    @classmethod
    def _empty_is_any(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def version_range(self) -> VersionRange:
        """The range, ``VersionRange.ALL`` when the document gives none (NuGet's default ``(, )``)."""
        return self.range if self.range is not None else VersionRange.ALL


class DependencyGroup(Model):
    """Dependencies for one target framework; no ``targetFramework`` means every framework."""

    url: str | None = Field(default=None, validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    target_framework: str | None = None
    dependencies: list[Dependency] | None = None


class AlternatePackage(Model):
    """The package to use instead of a deprecated one; ``range`` may be ``*`` (any version), so it stays text."""

    id: str
    range: str | None = None


class Deprecation(Model):
    """``reasons`` are ``Legacy``, ``CriticalBugs`` or ``Other`` (compared case-insensitively; others ignored)."""

    reasons: list[str]
    message: str | None = None
    alternate_package: AlternatePackage | None = None


class Vulnerability(Model):
    """A known vulnerability; ``severity`` 0 low, 1 moderate, 2 high, 3 critical (search writes a number)."""

    advisory_url: str
    severity: int


class RegistrationVulnerability(Vulnerability):
    """The registration form of a vulnerability: the same, but ``severity`` is written as a string ("2")."""

    @field_serializer("severity")
    def _as_text(self, severity: int) -> str:
        return str(severity)


class CatalogEntry(Model):
    """A package version's metadata, as inlined in registration leaves (NuGet's ``catalogEntry``)."""

    url: str = Field(validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    authors: OneOrMany | None = None
    dependency_groups: list[DependencyGroup] | None = None
    deprecation: Deprecation | None = None
    description: str | None = None
    icon_url: str | None = None
    id: str
    language: str | None = None
    license_expression: str | None = None
    license_url: str | None = None
    listed: bool | None = None
    min_client_version: str | None = None
    package_content: str | None = None
    project_url: str | None = None
    published: Timestamp | None = None
    readme_url: str | None = None
    require_license_acceptance: bool | None = None
    summary: str | None = None
    tags: OneOrMany | None = None
    title: str | None = None
    version: Version
    vulnerabilities: list[RegistrationVulnerability] | None = None

    @property
    def is_listed(self) -> bool:
        """``listed`` when given; otherwise listed unless ``published`` is nuget.org's unlisted year 1900."""
        if self.listed is not None:
            return self.listed
        return self.published is None or self.published.year != _UNLISTED_YEAR


class RegistrationLeafItem(Model):
    """One version inside a registration page."""

    url: str = Field(validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    commit_id: str | None = None
    commit_time_stamp: Timestamp | None = None
    catalog_entry: CatalogEntry
    package_content: str
    registration: str | None = None


class _PageFields(Model):
    url: str | None = Field(default=None, validation_alias="@id", serialization_alias="@id")
    type: str | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    commit_id: str | None = None
    commit_time_stamp: Timestamp | None = None
    count: int = Field(ge=0)
    items: list[RegistrationLeafItem] | None = None
    parent: str | None = None
    lower: NormalizedVersion
    upper: NormalizedVersion

    @classmethod
    def _of(cls, leaves: Sequence[RegistrationLeafItem], **fields: Any) -> dict[str, Any]:
        if not leaves:
            raise ValueError("a registration page needs at least one leaf")
        versions = [leaf.catalog_entry.version for leaf in leaves]
        return {"count": len(leaves), "lower": min(versions), "upper": max(versions), **fields}


class RegistrationPage(_PageFields):
    """A page as listed in a registration index: leaves inlined (``items``) or only linked (``@id``)."""

    @model_validator(mode="after")
    def _items_or_link(self) -> Self:
        if self.items is None and not self.url:
            raise ValueError("a page without 'items' needs an '@id' to fetch them from")
        return self

    @classmethod
    def inline(cls, url: str, parent: str, leaves: Sequence[RegistrationLeafItem]) -> RegistrationPage:
        """A page with its leaves inlined; ``count``, ``lower`` and ``upper`` are computed from them."""
        return cls(**cls._of(leaves, url=url, parent=parent, items=list(leaves)))

    @classmethod
    def linked(cls, url: str, leaves: Sequence[RegistrationLeafItem]) -> RegistrationPage:
        """A page that only links to its document (which ``RegistrationPageDocument.of`` builds)."""
        return cls(**cls._of(leaves, url=url))


class RegistrationPageDocument(_PageFields, Document):
    """A registration page fetched from its ``@id``: always with ``items`` (and ``parent``)."""

    KIND: ClassVar[str] = "registration page"

    items: list[RegistrationLeafItem]

    @classmethod
    def of(cls, url: str, parent: str, leaves: Sequence[RegistrationLeafItem]) -> RegistrationPageDocument:
        return cls(**cls._of(leaves, url=url, parent=parent, items=list(leaves)))


class RegistrationIndex(Document):
    """``{count, items: [page]}`` for one package id."""

    KIND: ClassVar[str] = "registration index"

    url: str | None = Field(default=None, validation_alias="@id", serialization_alias="@id")
    type: OneOrMany | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    commit_id: str | None = None
    commit_time_stamp: Timestamp | None = None
    count: int = Field(ge=0)
    items: list[RegistrationPage]
    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")

    @classmethod
    def of(cls, url: str, pages: Sequence[RegistrationPage]) -> RegistrationIndex:
        return cls(url=url, count=len(pages), items=list(pages))


class RegistrationLeaf(Document):
    """``{@id}/{lower id}/{lower version}.json``: one version, with ``catalogEntry`` as a URL."""

    KIND: ClassVar[str] = "registration leaf"

    url: str = Field(validation_alias="@id", serialization_alias="@id")
    type: OneOrMany | None = Field(default=None, validation_alias="@type", serialization_alias="@type")
    catalog_entry: str | None = None
    listed: bool | None = None
    package_content: str | None = None
    published: Timestamp | None = None
    registration: str | None = None
    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")
