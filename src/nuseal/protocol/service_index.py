"""The service index (``GET /v3/index.json``) and the one table of resource types (server.md §E.1).

``ResourceKind`` lists, per resource, the ``@type`` strings NuGet's client looks for in its order of
preference (NuGet.Protocol ``ServiceTypes``) and the ones a server should advertise for broad client
support. ``ServiceIndex.find(kind)`` is the client's lookup: the first preferred type any resource carries
wins, and among resources of that type the first in the document.

NuGet quirks kept: ``@type`` may be a string or an array of strings; a resource without a usable ``@id``
(missing, not a string, not an absolute URL) is skipped rather than failing the whole index; type strings
compare exactly (case-sensitive); the document's ``version`` must be SemVer 2.0 with major version 3.
``clientVersion`` filtering of ``/Versioned`` entries is not done: nuseal is not a versioned client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, NamedTuple

from pydantic import Field, JsonValue, field_validator

from nuseal.protocol.document import Document, Model, OneOrMany, as_list
from nuseal.protocol.urls import is_absolute_url
from nuseal.versioning import NuGetVersion


@dataclass(frozen=True)
class ResourceTypes:
    """What clients look for (priority order) and what a server advertises for one resource."""

    preferred: tuple[str, ...]
    advertised: tuple[str, ...]


class ResourceKind(Enum):
    """Every V3 resource nuseal reads or serves, with its ``@type`` strings (NuGet ``ServiceTypes``)."""

    PACKAGE_BASE_ADDRESS = ResourceTypes(
        ("PackageBaseAddress/Versioned", "PackageBaseAddress/3.0.0"),
        ("PackageBaseAddress/3.0.0",))
    PACKAGE_PUBLISH = ResourceTypes(
        ("PackagePublish/Versioned", "PackagePublish/2.0.0"),
        ("PackagePublish/2.0.0",))
    REGISTRATIONS_BASE_URL = ResourceTypes(
        ("RegistrationsBaseUrl/Versioned", "RegistrationsBaseUrl/3.6.0", "RegistrationsBaseUrl/3.4.0",
         "RegistrationsBaseUrl/3.0.0-rc", "RegistrationsBaseUrl/3.0.0-beta", "RegistrationsBaseUrl"),
        ("RegistrationsBaseUrl", "RegistrationsBaseUrl/3.0.0-rc", "RegistrationsBaseUrl/3.0.0-beta",
         "RegistrationsBaseUrl/3.4.0", "RegistrationsBaseUrl/3.6.0"))
    # NuGet reads SearchQueryService/3.5.0 separately, only to filter by package type.
    SEARCH_QUERY_SERVICE = ResourceTypes(
        ("SearchQueryService/Versioned", "SearchQueryService/3.4.0", "SearchQueryService/3.0.0-beta"),
        ("SearchQueryService", "SearchQueryService/3.0.0-beta", "SearchQueryService/3.0.0-rc",
         "SearchQueryService/3.5.0"))
    SEARCH_AUTOCOMPLETE_SERVICE = ResourceTypes(
        ("SearchAutocompleteService/Versioned", "SearchAutocompleteService/3.0.0-beta"),
        ("SearchAutocompleteService", "SearchAutocompleteService/3.0.0-beta", "SearchAutocompleteService/3.0.0-rc",
         "SearchAutocompleteService/3.5.0"))
    # The V2 (OData) feed of the same packages: nuget.exe's `list` reads it (nothing else in NuGet 5+ needs it).
    LEGACY_GALLERY = ResourceTypes(
        ("LegacyGallery", "LegacyGallery/2.0.0"),
        ("LegacyGallery", "LegacyGallery/2.0.0"))
    SYMBOL_PACKAGE_PUBLISH = ResourceTypes(
        ("SymbolPackagePublish/4.9.0",),
        ("SymbolPackagePublish/4.9.0",))
    # 4.7.0 is advertised for old clients (with allRepositorySigned false), 5.0.0 with the real value (§C.2).
    REPOSITORY_SIGNATURES = ResourceTypes(
        ("RepositorySignatures/5.0.0", "RepositorySignatures/4.9.0", "RepositorySignatures/4.7.0"),
        ("RepositorySignatures/4.7.0", "RepositorySignatures/5.0.0"))
    README_URI_TEMPLATE = ResourceTypes(
        ("ReadmeUriTemplate/Versioned", "ReadmeUriTemplate/6.13.0"),
        ("ReadmeUriTemplate/6.13.0",))
    PACKAGE_DETAILS_URI_TEMPLATE = ResourceTypes(
        ("PackageDetailsUriTemplate/5.1.0",),
        ("PackageDetailsUriTemplate/5.1.0",))
    REPORT_ABUSE_URI_TEMPLATE = ResourceTypes(
        ("ReportAbuseUriTemplate/Versioned", "ReportAbuseUriTemplate/3.0.0"),
        ("ReportAbuseUriTemplate/3.0.0",))
    VULNERABILITY_INFO = ResourceTypes(
        ("VulnerabilityInfo/6.7.0",),
        ("VulnerabilityInfo/6.7.0",))
    OWNER_DETAILS_URI_TEMPLATE = ResourceTypes(
        ("OwnerDetailsUriTemplate/6.11.0",),
        ("OwnerDetailsUriTemplate/6.11.0",))

    @property
    def preferred(self) -> tuple[str, ...]:
        """The ``@type`` strings a client looks for, most preferred first."""
        return self.value.preferred

    @property
    def advertised(self) -> tuple[str, ...]:
        """The ``@type`` strings a server lists (one resource entry each) for broad client support."""
        return self.value.advertised


class Match(NamedTuple):
    """A resource found in a service index: the ``@type`` it matched on and its ``@id``."""

    type: str
    url: str


class ServiceIndexResource(Model):
    url: str = Field(validation_alias="@id", serialization_alias="@id")
    type: OneOrMany = Field(validation_alias="@type", serialization_alias="@type")
    comment: str | None = None

    @property
    def types(self) -> list[str]:
        return as_list(self.type)


class ServiceIndex(Document):
    """``{"version": "3.0.0", "resources": [...]}``."""

    KIND: ClassVar[str] = "service index"

    version: str
    resources: list[ServiceIndexResource]
    context: JsonValue | None = Field(default=None, validation_alias="@context", serialization_alias="@context")

    @field_validator("version")
    @classmethod
    def _version_3(cls, value: str) -> str:
        if NuGetVersion.parse(value, strict=True).major != 3:
            raise ValueError(f"service index version '{value}' is not supported (NuGet reads 3.x.y)")
        return value

    @field_validator("resources", mode="before")
    @classmethod
    def _usable_resources(cls, value: Any) -> Any:
        # NuGet skips entries without a string @id and reads only the string values of @type.
        if not isinstance(value, list):
            return value
        kept: list[Any] = []
        for entry in value:
            if isinstance(entry, ServiceIndexResource):
                kept.append(entry)
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("@id"), str):
                continue
            types = entry.get("@type")
            if isinstance(types, list):
                entry = {**entry, "@type": [t for t in types if isinstance(t, str)]}
            elif not isinstance(types, str):
                continue
            kept.append(entry)
        return kept

    def find(self, kind: ResourceKind) -> Match | None:
        """The resource a NuGet client would use for ``kind``, or ``None`` when the feed has none."""
        for wanted in kind.preferred:
            for resource in self.resources:
                if wanted in resource.types and is_absolute_url(resource.url):
                    return Match(wanted, resource.url)
        return None

    def url(self, kind: ResourceKind) -> str | None:
        """The ``@id`` of the resource ``find`` picks."""
        match = self.find(kind)
        return match.url if match else None

    @classmethod
    def advertising(cls, urls: dict[ResourceKind, str], *, comments: dict[ResourceKind, str] | None = None,
                    ) -> ServiceIndex:
        """A service index listing every advertised type of each kind in ``urls`` at its URL (server side)."""
        notes = comments or {}
        return cls(version="3.0.0", resources=[
            ServiceIndexResource(url=url, type=resource_type, comment=notes.get(kind))
            for kind, url in urls.items() for resource_type in kind.advertised
        ])
