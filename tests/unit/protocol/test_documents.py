"""What every V3 document shares: JSON schema for FastAPI, emission rules, timestamps, and import cost."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuseal.protocol import (
    AutocompleteIds,
    AutocompleteVersions,
    PackageVersionsIndex,
    RegistrationIndex,
    RegistrationLeaf,
    RegistrationPageDocument,
    RepositorySignatureCertificate,
    RepositorySignatures,
    SearchResponse,
    ServiceIndex,
)
from nuseal.protocol.document import Document

DOCUMENTS: list[type[Document]] = [ServiceIndex, PackageVersionsIndex, RegistrationIndex, RegistrationPageDocument,
                                   RegistrationLeaf, SearchResponse, AutocompleteIds, AutocompleteVersions,
                                   RepositorySignatures]


@pytest.mark.parametrize("model", DOCUMENTS, ids=lambda m: m.__name__)
def test_every_document_has_a_json_schema_in_nugets_spelling(model: type[Document]) -> None:
    for mode in ("validation", "serialization"):
        schema = model.model_json_schema(mode=mode)  # type: ignore[arg-type]
        text = json.dumps(schema)
        assert "_" not in "".join(schema.get("properties", {})), schema["properties"]  # camelCase / @id only
        assert '"@id"' in text or model in (PackageVersionsIndex, AutocompleteIds, AutocompleteVersions,
                                            RepositorySignatures, SearchResponse)
    assert model.KIND != Document.KIND


def test_schemas_spell_at_fields_and_nested_types() -> None:
    schema = RegistrationIndex.model_json_schema(mode="serialization")
    entry = schema["$defs"]["CatalogEntry"]["properties"]
    assert {"@id", "@type", "dependencyGroups", "requireLicenseAcceptance", "version"} <= set(entry)
    assert entry["version"]["type"] == "string" and entry["published"]["anyOf"][0]["format"] == "date-time"


def _certificate(when: datetime) -> RepositorySignatureCertificate:
    return RepositorySignatureCertificate(fingerprints={"2.16.840.1.101.3.4.2.1": "ab" * 32}, subject="CN=a",
                                          issuer="CN=b", not_before=when, not_after=when,
                                          content_url="https://f.test/a.crt")


def test_timestamps_are_written_in_utc_with_seven_digits() -> None:
    local = datetime(2024, 2, 23, 1, 30, 0, 120000, tzinfo=timezone(timedelta(hours=1, minutes=30)))
    emitted = RepositorySignatures(all_repository_signed=False, signing_certificates=[_certificate(local)]).emit()
    assert emitted["signingCertificates"][0]["notBefore"] == "2024-02-23T00:00:00.1200000Z"


def test_a_timestamp_without_offset_is_read_as_utc() -> None:
    document = {"allRepositorySigned": False, "signingCertificates": [
        {**_certificate(datetime(2024, 1, 1, tzinfo=UTC)).model_dump(by_alias=True, mode="json"),
         "notBefore": "2024-02-23T00:00:00"}]}
    parsed = RepositorySignatures.parse(document, source="x")
    assert parsed.signing_certificates[0].not_before == datetime(2024, 2, 23, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)))
def test_timestamps_round_trip(when: datetime) -> None:
    signatures = RepositorySignatures(all_repository_signed=True, signing_certificates=[_certificate(when)])
    assert RepositorySignatures.parse(signatures.to_json(), source="x") == signatures


def test_to_json_is_compact_utf8_and_keeps_non_ascii() -> None:
    body = AutocompleteIds(total_hits=1, data=["Zürich.Lib"]).to_json()
    assert body == '{"totalHits":1,"data":["Zürich.Lib"]}'.encode()


def test_documents_are_immutable() -> None:
    index = AutocompleteIds(total_hits=0, data=[])
    with pytest.raises(ValueError, match="frozen"):
        index.total_hits = 5  # type: ignore[misc]


@pytest.mark.parametrize("module", ["nuseal.cli.verify", "nuseal.cli.sign"])
def test_verify_and_sign_do_not_import_the_protocol_layer(module: str) -> None:
    # Start-up time is part of every verify/sign run: pydantic and the V3 models must stay out of them.
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m == 'pydantic' or m.startswith('nuseal.protocol')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
