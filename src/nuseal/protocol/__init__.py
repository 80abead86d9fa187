"""NuGet V3 JSON documents as typed models (layer 1: pure, no network or file I/O).

One set of models for both sides: the client parses what a feed serves, the feed server emits what it
serves with the same classes (and FastAPI can publish their JSON schema). Each document class has
``parse(data, source=url)`` (``ProtocolError`` naming the document, URL and field) and ``emit()`` /
``to_json()``. Modules: ``service_index`` (resource type table and lookup), ``package_content`` (flat
container), ``registration`` (package metadata), ``search`` (search and autocomplete),
``repository_signatures`` (the document and NuGet's rules for reading it), ``urls`` (absolute URLs, https).

Importing this package imports pydantic; ``nuseal verify`` and ``nuseal sign`` never need it.
"""

from nuseal.protocol.package_content import PackageVersionsIndex
from nuseal.protocol.registration import (
    CatalogEntry,
    Dependency,
    DependencyGroup,
    Deprecation,
    RegistrationIndex,
    RegistrationLeaf,
    RegistrationLeafItem,
    RegistrationPage,
    RegistrationPageDocument,
)
from nuseal.protocol.repository_signatures import (
    RepositorySignatureCertificate,
    RepositorySignatures,
    read_repository_signatures,
)
from nuseal.protocol.search import AutocompleteIds, AutocompleteVersions, SearchResponse, SearchResult
from nuseal.protocol.service_index import Match, ResourceKind, ServiceIndex, ServiceIndexResource

__all__ = [
    "AutocompleteIds",
    "AutocompleteVersions",
    "CatalogEntry",
    "Dependency",
    "DependencyGroup",
    "Deprecation",
    "Match",
    "PackageVersionsIndex",
    "RegistrationIndex",
    "RegistrationLeaf",
    "RegistrationLeafItem",
    "RegistrationPage",
    "RegistrationPageDocument",
    "RepositorySignatureCertificate",
    "RepositorySignatures",
    "ResourceKind",
    "SearchResponse",
    "SearchResult",
    "ServiceIndex",
    "ServiceIndexResource",
    "read_repository_signatures",
]
