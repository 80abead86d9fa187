"""``nuseal inspect``: everything inside a signature, for humans (and as a dict for ``--json``)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography import x509

from nuseal import oids
from nuseal.cms.parse import PrimarySignature, SignerView, load_primary_signature
from nuseal.errors import PackageFormatError, TimestampError
from nuseal.package import zipformat
from nuseal.timestamp.token import load_timestamp
from nuseal.x509 import certs

_ATTRIBUTE_NAMES = {
    oids.CONTENT_TYPE: "content-type", oids.SIGNING_TIME: "signing-time", oids.MESSAGE_DIGEST: "message-digest",
    oids.COMMITMENT_TYPE_INDICATION: "commitment-type-indication", oids.SIGNING_CERTIFICATE: "signing-certificate",
    oids.SIGNING_CERTIFICATE_V2: "signing-certificate-v2",
    oids.NUGET_V3_SERVICE_INDEX_URL: "nuget-v3-service-index-url",
    oids.NUGET_PACKAGE_OWNERS: "nuget-package-owners", oids.SIGNATURE_TIMESTAMP_TOKEN: "signature-time-stamp-token",
    oids.COUNTERSIGNATURE: "countersignature",
}


def read_signature(path: Path) -> bytes:
    """The signature bytes of a package (or the file itself when it is a bare ``.p7s``)."""
    if path.suffix.lower() == ".p7s":
        return path.read_bytes()
    with path.open("rb") as f:
        layout = zipformat.read_layout(f)
        if not zipformat.has_signature_entry(layout):
            raise PackageFormatError(f"'{path}' is not signed: it has no .signature.p7s entry")
        entry = zipformat.find_signature_entry(f, layout, check_fields=False)
        return zipformat.read_signature_bytes(f, entry)


def _cert_dict(cert: x509.Certificate) -> dict[str, Any]:
    summary = certs.summarize(cert)
    data = summary.to_dict()
    ekus = certs.extended_key_usages(cert)
    data.update({"signature_algorithm": certs.signature_algorithm_oid(cert), "rsa_bits": certs.rsa_key_bits(cert),
                 "ekus": sorted(ekus) if ekus is not None else None})
    return data


def _attributes(signer: SignerView, which: str) -> list[str]:
    attrs = signer.signer_info[which]
    if not attrs:
        return []
    return [_ATTRIBUTE_NAMES.get(a["type"].dotted, a["type"].dotted) for a in attrs]


def _signer_dict(signer: SignerView, signed_over: bytes) -> dict[str, Any]:
    timestamps: list[dict[str, Any]] = []
    for token in signer.timestamp_tokens:
        try:
            ts = load_timestamp(token)
            timestamps.append({"time": ts.gen_time.isoformat(), "accuracy_seconds": ts.accuracy.total_seconds(),
                               "policy": ts.policy_oid, "hash_algorithm": ts.imprint_algorithm_name,
                               "serial_number": ts.serial_number, "nonce": ts.nonce,
                               "certificate": _cert_dict(ts.signer_certificate),
                               "certificates": [_cert_dict(c) for c in ts.certificates]})
        except TimestampError as exc:
            timestamps.append({"error": str(exc)})
    del signed_over
    return {
        "kind": signer.kind.value,
        "digest_algorithm": signer.digest_algorithm_oid,
        "signature_algorithm": signer.signature_algorithm_oid,
        "signer_identifier": signer.signer_info["sid"].name,
        "signing_time": signer.signing_time.isoformat() if signer.signing_time else None,
        "signed_attributes": _attributes(signer, "signed_attrs"),
        "unsigned_attributes": _attributes(signer, "unsigned_attrs"),
        "service_index_url": signer.service_index_url,
        "owners": list(signer.owners),
        "certificate": _cert_dict(signer.certificate) if signer.certificate else None,
        "timestamps": timestamps,
    }


def describe(signature: PrimarySignature) -> dict[str, Any]:
    counter = signature.countersignature()
    return {
        "signed_data_version": signature.signed_data["version"].native,
        "content": {"hash_algorithm": signature.content.hash_name,
                    "hash": base64.b64encode(signature.content.hash_value).decode("ascii")},
        "certificates": [_cert_dict(c) for c in signature.certificates],
        "primary": _signer_dict(signature.signer, signature.content_bytes),
        "countersignature": _signer_dict(counter.signer, signature.signature_value) if counter else None,
    }


def _cert_lines(data: dict[str, Any], indent: str) -> list[str]:
    return [f"{indent}Subject: {data['subject']}", f"{indent}Issuer: {data['issuer']}",
            f"{indent}SHA256: {data['sha256'].upper()}", f"{indent}Valid: {data['not_before']} to {data['not_after']}",
            f"{indent}Algorithm: {data['signature_algorithm']}, RSA bits: {data['rsa_bits']}, EKUs: {data['ekus']}"]


def _signer_lines(title: str, data: dict[str, Any]) -> list[str]:
    lines = ["", f"{title} ({data['kind']})", f"  Digest: {data['digest_algorithm']}  Signature: "
             f"{data['signature_algorithm']}  SID: {data['signer_identifier']}",
             f"  Signing time: {data['signing_time']}",
             f"  Signed attributes: {', '.join(data['signed_attributes'])}",
             f"  Unsigned attributes: {', '.join(data['unsigned_attributes']) or '-'}"]
    if data["service_index_url"]:
        lines.append(f"  Service index: {data['service_index_url']}")
    if data["owners"]:
        lines.append(f"  Owners: {', '.join(data['owners'])}")
    if data["certificate"]:
        lines.append("  Signer certificate:")
        lines.extend(_cert_lines(data["certificate"], "    "))
    for ts in data["timestamps"]:
        if "error" in ts:
            lines.append(f"  Timestamp: invalid ({ts['error']})")
            continue
        lines.append(f"  Timestamp: {ts['time']} ±{ts['accuracy_seconds']}s policy {ts['policy']} "
                     f"{ts['hash_algorithm']} serial {ts['serial_number']}")
        lines.extend(_cert_lines(ts["certificate"], "    "))
    return lines


def inspect_lines(path: Path) -> tuple[list[str], dict[str, Any]]:
    """Human lines and the JSON document for ``nuseal inspect``."""
    document = describe(load_primary_signature(read_signature(path)))
    document = {"path": str(path), **document}
    lines = [f"Signature of {path}", f"  SignedData version {document['signed_data_version']}, "
             f"package hash {document['content']['hash_algorithm']}: {document['content']['hash']}",
             f"  Certificates ({len(document['certificates'])}):"]
    for cert in document["certificates"]:
        lines.extend(_cert_lines(cert, "    "))
        lines.append("")
    lines.extend(_signer_lines("Primary signature", document["primary"]))
    if document["countersignature"]:
        lines.extend(_signer_lines("Repository countersignature", document["countersignature"]))
    return lines, document
