"""NuGet's NU3xxx log codes and nuseal's own issue codes, each defined exactly once.

Every finding nuseal reports (``nuseal.findings.Finding``) carries one of these codes: a ``NuCode`` when NuGet has
one, an ``IssueCode`` otherwise. The default message is NuGet's own wording (NuGet.Client ``Strings.resx``, spec
§6.6) so that scripts matching on messages keep working. Severity is *not* stored here: it comes from the
verification policy (spec §6.2), never from the check.
"""

from __future__ import annotations

from enum import Enum


class NuCode(str, Enum):
    """A NuGet log code. The enum value is the code string itself (``"NU3008"``)."""

    NU3000 = "NU3000"
    NU3001 = "NU3001"
    NU3002 = "NU3002"
    NU3003 = "NU3003"
    NU3004 = "NU3004"
    NU3005 = "NU3005"
    NU3006 = "NU3006"
    NU3007 = "NU3007"
    NU3008 = "NU3008"
    NU3009 = "NU3009"
    NU3010 = "NU3010"
    NU3011 = "NU3011"
    NU3012 = "NU3012"
    NU3013 = "NU3013"
    NU3014 = "NU3014"
    NU3015 = "NU3015"
    NU3016 = "NU3016"
    NU3017 = "NU3017"
    NU3018 = "NU3018"
    NU3019 = "NU3019"
    NU3020 = "NU3020"
    NU3021 = "NU3021"
    NU3022 = "NU3022"
    NU3023 = "NU3023"
    NU3024 = "NU3024"
    NU3025 = "NU3025"
    NU3026 = "NU3026"
    NU3027 = "NU3027"
    NU3028 = "NU3028"
    NU3029 = "NU3029"
    NU3030 = "NU3030"
    NU3031 = "NU3031"
    NU3032 = "NU3032"
    NU3033 = "NU3033"
    NU3034 = "NU3034"
    NU3035 = "NU3035"
    NU3036 = "NU3036"
    NU3037 = "NU3037"
    NU3038 = "NU3038"
    NU3039 = "NU3039"
    NU3040 = "NU3040"
    NU3041 = "NU3041"
    NU3042 = "NU3042"
    NU3043 = "NU3043"

    @property
    def summary(self) -> str:
        """One line saying what the code means (for docs and ``--help``)."""
        return _SUMMARIES[self]

    def __str__(self) -> str:
        return self.value


class IssueCode(str, Enum):
    """A finding NuGet has no NU code for. Values are PascalCase names, as nuget.org's ``ValidationIssueCode``
    spells its own (server.md §B.4), so a feed server can reuse that vocabulary (``PackageIsZip64``, ...)."""

    #: The file is not a readable package (not a zip, unreadable): nothing could be verified.
    INVALID_PACKAGE_FILE = "InvalidPackageFile"
    #: A path or glob given to verify names no file.
    PACKAGE_NOT_FOUND = "PackageNotFound"
    #: The verifier itself failed on this package (a bug): the package is not accepted.
    VERIFICATION_FAILED = "VerificationFailed"
    #: The policy's verification targets / placement exclude every signature the package has.
    NO_VERIFIABLE_SIGNATURE = "NoVerifiableSignature"
    #: Install: an entry would escape the output folder, is a link, or inflates beyond the limits.
    UNSAFE_PACKAGE_CONTENT = "UnsafePackageContent"
    #: Install: a verified package could not be extracted (unreadable zip, I/O error).
    EXTRACTION_FAILED = "ExtractionFailed"
    #: Install: the extracted packages could not be moved into the output folder.
    INSTALL_COMMIT_FAILED = "InstallCommitFailed"
    # --- feed server push judgement (governance branch, issue 10): nuget.org's ValidationIssueCode names, and
    # its PackageValidationResultType / resource names where the check has no issue code.
    #: A push must be signed with a registered certificate (signing is required for the package).
    PACKAGE_IS_NOT_SIGNED = "PackageIsNotSigned"
    #: The author signing certificate is not registered to an account the package's signer rules accept.
    PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE = "PackageIsSignedWithUnauthorizedCertificate"
    #: A signed push where no applicable account has a certificate (nuget.org's fast check).
    PACKAGE_SHOULD_NOT_BE_SIGNED = "PackageShouldNotBeSigned"
    #: The primary signature has an author countersignature.
    AUTHOR_COUNTER_SIGNATURES_NOT_SUPPORTED = "AuthorCounterSignaturesNotSupported"
    #: The primary signature is neither an author nor a repository signature.
    ONLY_AUTHOR_SIGNATURES_SUPPORTED = "OnlyAuthorSignaturesSupported"
    #: Warning: the previous version was author-signed, the pushed one is not.
    SIGNED_TO_UNSIGNED_TRANSITION = "SignedToUnsignedTransition"
    #: The version already exists (a push would get 409).
    PACKAGE_ALREADY_EXISTS = "PackageAlreadyExists"
    #: (branch govwire) No longer issued: pushes carrying a repository signature are accepted and the validation job
    #: strips foreign ones, as nuget.org does. Kept so that refusals recorded before still read back.
    REPOSITORY_SIGNATURE_NOT_ACCEPTED = "RepositorySignatureNotAccepted"

    # --- feed push checks (branch feedapi). nuget.org's ValidationIssueCode names where it has one, otherwise
    # the name of nuget.org's upload message (Strings.UploadPackage_*, ManifestValidator's Manifest_*).
    #: Push: the package is a Zip64 archive (nuget.org ``ValidationIssueCode.PackageIsZip64``).
    PACKAGE_IS_ZIP64 = "PackageIsZip64"
    #: Push: the nuspec is missing, unreadable or breaks nuget.org's manifest rules.
    INVALID_NUSPEC = "InvalidNuspec"
    #: Push: more zip entries than nuget.org accepts (65534 signed, fewer unsigned).
    PACKAGE_CONTAINS_TOO_MANY_ENTRIES = "PackageContainsTooManyEntries"
    #: Push: a zip entry nuget.org refuses (duplicate name, date in the future, doubled slashes).
    INVALID_PACKAGE_ENTRY = "InvalidPackageEntry"
    #: Push: the version was accepted but could not be stored or published (storage or database failure).
    PACKAGE_STORAGE_FAILED = "PackageStorageFailed"
    # --- validation pipeline (branch pipeline, issue 11)
    #: The validation job could not repository-sign the package, or the signed result did not verify.
    REPOSITORY_SIGNING_FAILED = "RepositorySigningFailed"

    @property
    def summary(self) -> str:
        """One line saying what the code means (for docs)."""
        return _ISSUE_SUMMARIES[self]

    def __str__(self) -> str:
        return self.value


_ISSUE_SUMMARIES: dict[IssueCode, str] = {
    IssueCode.INVALID_PACKAGE_FILE: "The file is not a readable NuGet package.",
    IssueCode.PACKAGE_NOT_FOUND: "No file matches the path or pattern given.",
    IssueCode.VERIFICATION_FAILED: "nuseal failed while verifying the package; it is not accepted.",
    IssueCode.NO_VERIFIABLE_SIGNATURE: "No signature of the package is one the verification policy verifies.",
    IssueCode.UNSAFE_PACKAGE_CONTENT: "A package entry is unsafe to extract (path traversal, link, zip bomb).",
    IssueCode.EXTRACTION_FAILED: "The package could not be extracted.",
    IssueCode.INSTALL_COMMIT_FAILED: "The installed packages could not be moved into the output folder.",
    IssueCode.PACKAGE_IS_NOT_SIGNED: "The feed requires this package to be signed with a registered certificate.",
    IssueCode.PACKAGE_IS_SIGNED_WITH_UNAUTHORIZED_CERTIFICATE:
        "The signing certificate is not registered to an account the package's signer rules accept.",
    IssueCode.PACKAGE_SHOULD_NOT_BE_SIGNED:
        "The package is signed, but no account the package's signer rules name has a registered certificate.",
    IssueCode.AUTHOR_COUNTER_SIGNATURES_NOT_SUPPORTED: "Author countersignatures are not supported.",
    IssueCode.ONLY_AUTHOR_SIGNATURES_SUPPORTED: "The primary signature is neither an author nor a repository one.",
    IssueCode.SIGNED_TO_UNSIGNED_TRANSITION: "The previous version was author-signed; the pushed one is unsigned.",
    IssueCode.PACKAGE_ALREADY_EXISTS: "The package version already exists on the feed.",
    IssueCode.REPOSITORY_SIGNATURE_NOT_ACCEPTED: "The feed does not take packages carrying a repository signature.",
    IssueCode.REPOSITORY_SIGNING_FAILED: "The feed could not repository-sign the package.",
    IssueCode.PACKAGE_IS_ZIP64: "Zip64 packages are not supported by the feed.",
    IssueCode.INVALID_NUSPEC: "The package's nuspec is missing, unreadable or breaks the feed's manifest rules.",
    IssueCode.PACKAGE_CONTAINS_TOO_MANY_ENTRIES: "The package contains too many files and/or folders.",
    IssueCode.INVALID_PACKAGE_ENTRY: "A zip entry of the package is refused (duplicate, dated in the future, //).",
    IssueCode.PACKAGE_STORAGE_FAILED: "The pushed package could not be stored; push it again.",
}


# What each code means, in NuGet's terms (spec §6.6). Messages for specific findings are built at the
# emission site, usually from the templates in ``Messages`` below.
_SUMMARIES: dict[NuCode, str] = {
    NuCode.NU3000: "Generic signing error (invalid signature content, invalid attribute, multiple timestamps).",
    NuCode.NU3001: "Invalid input to sign: already signed, unreadable certificate or key, wrong password.",
    NuCode.NU3002: "No --timestamper was given: the signed package will not be timestamped.",
    NuCode.NU3003: "The package signature is invalid or cannot be verified on this platform.",
    NuCode.NU3004: "The package is not signed.",
    NuCode.NU3005: "The package signature file entry is invalid.",
    NuCode.NU3006: "Signed Zip64 packages are not supported.",
    NuCode.NU3007: "The package signature format version is not supported.",
    NuCode.NU3008: "The package integrity check failed.",
    NuCode.NU3009: "The package signature file does not contain exactly one primary signature.",
    NuCode.NU3010: "The primary signature does not have a signing certificate.",
    NuCode.NU3011: "The primary signature is invalid.",
    NuCode.NU3012: "Signature validation failed, or the signing certificate chain has a building issue.",
    NuCode.NU3013: "The signing certificate has an unsupported signature algorithm.",
    NuCode.NU3014: "The signing certificate does not meet a minimum public key length requirement.",
    NuCode.NU3015: "Certificates with lifetime signer EKU are not supported.",
    NuCode.NU3016: "The package hash uses an unsupported hash algorithm.",
    NuCode.NU3017: "The signing certificate is not yet valid.",
    NuCode.NU3018: "Chain building failed for the signing certificate (untrusted root or unknown revocation).",
    NuCode.NU3019: "The timestamp integrity check failed.",
    NuCode.NU3020: "The timestamp's signing certificate is missing.",
    NuCode.NU3021: "Timestamp signature validation failed.",
    NuCode.NU3022: "The timestamp certificate has an unsupported signature algorithm.",
    NuCode.NU3023: "The timestamp's certificate does not meet a minimum public key length requirement.",
    NuCode.NU3024: "The timestamp signature has an unsupported digest algorithm.",
    NuCode.NU3025: "The timestamp signing certificate is not yet valid.",
    NuCode.NU3026: "The timestamp response is invalid: nonces did not match.",
    NuCode.NU3027: "The signature should be timestamped to enable long-term signature validity.",
    NuCode.NU3028: "Chain building failed for the timestamp certificate.",
    NuCode.NU3029: "The timestamp signature is invalid.",
    NuCode.NU3030: "The timestamp's message imprint uses an unsupported hash algorithm.",
    NuCode.NU3031: "The repository countersignature is invalid.",
    NuCode.NU3032: "The package signature contains multiple repository countersignatures.",
    NuCode.NU3033: "A repository primary signature must not have a repository countersignature.",
    NuCode.NU3034: "The signing certificate is not in an allow list.",
    NuCode.NU3035: "Chain building failed for the repository countersignature.",
    NuCode.NU3036: "The timestamp's generalized time is outside the timestamping certificate's validity.",
    NuCode.NU3037: "The signature validity period has expired.",
    NuCode.NU3038: "The repository countersignature is required but missing.",
    NuCode.NU3039: "The package cannot be signed as it would require the Zip64 format.",
    NuCode.NU3040: "Conflicting allowUntrustedRoot values for the same certificate in trusted signers.",
    NuCode.NU3041: "Unsigned packages are not allowed for this operation.",
    NuCode.NU3042: "The root certificate is not in the certificate bundle.",
    NuCode.NU3043: "Invalid or SHA-1 certificate fingerprint.",
}


class Messages:
    """NuGet's message texts that more than one module emits. ``{0}``-style slots are ``str.format`` fields."""

    NOT_SIGNED = "The package is not signed."
    SIGNATURE_INVALID = "The package signature is invalid or cannot be verified on this platform."
    INTEGRITY_FAILED = (
        "The package integrity check failed. The package has changed since it was signed. "
        "Try clearing the local http-cache and run nuget operation again."
    )
    NO_VALID_SIGNATURE_FILE = "The package does not contain a valid package signature file."
    MULTIPLE_SIGNATURE_FILES = "The package contains multiple package signature files."
    INVALID_ENTRY_FIELD = (
        "The package signature file entry is invalid. "
        "The {header} header field '{field}' has an invalid value ({value})."
    )
    ZIP64_NOT_SUPPORTED = "Signed Zip64 packages are not supported."
    WOULD_REQUIRE_ZIP64 = "The package cannot be signed as it would require the Zip64 format."
    ALREADY_SIGNED = (
        "The package already contains a signature. Please remove the existing signature before adding a new "
        "signature."
    )
    CONTENT_INVALID = "The package signature content is invalid."
    VERSION_UNSUPPORTED = (
        "The package signature format version is not supported. Updating your client may solve this problem."
    )
    HASH_NOT_FOUND = "Package hash information could not be read from the package signature."
    NOT_ONE_PRIMARY = "The package signature file does not contain exactly one primary signature."
    NO_SIGNING_CERT = "The primary signature does not have a signing certificate."
    PRIMARY_INVALID = "The primary signature is invalid."
    COUNTERSIGNATURE_INVALID = "The repository countersignature is invalid."
    MULTIPLE_COUNTERSIGNATURES = "The package signature contains multiple repository countersignatures."
    REPO_PRIMARY_WITH_COUNTER = "A repository primary signature must not have a repository countersignature."
    VALIDATION_FAILED = "The {0} validation failed."
    CHAIN_ISSUE = "The {0} found a chain building issue: {1}"
    UNTRUSTED_ROOT = "The {0}'s signing certificate is not trusted by the trust provider."
    REVOCATION_OFFLINE = (
        "The {0} found a chain building issue: The revocation function was unable to check revocation "
        "because the revocation server could not be reached. For more information, visit "
        "https://aka.ms/certificateRevocationMode."
    )
    REVOCATION_UNKNOWN = (
        "The {0} found a chain building issue: The revocation function was unable to check revocation "
        "for the certificate."
    )
    UNSUPPORTED_CERT_SIGNATURE_ALGORITHM = (
        "The {0} has an unsupported signature algorithm. The signing certificate is not supported."
    )
    KEY_TOO_SHORT = "The {0}'s certificate does not meet a minimum public key length requirement."
    LIFETIME_EKU = (
        "The {0}'s certificate has lifetime signer EKU. Certificates with lifetime signer EKU are not supported."
    )
    CERT_NOT_YET_VALID = "The {0}'s certificate is not yet valid."
    CERT_EXPIRED = "The {0} validity period has expired."
    # NU3002 at sign time; NuGet's text names its own '-Timestamper' option, ours names nuseal's.
    NO_TIMESTAMPER = (
        "The '--timestamper' option was not provided. The signed package will not be timestamped, so its "
        "signature stops being valid when the signing certificate expires. See 'nuseal sign --help'."
    )
    NO_TIMESTAMP = (
        "The {0} should be timestamped to enable long-term signature validity after the certificate has expired."
    )
    MULTIPLE_TIMESTAMPS = "Multiple timestamps are not accepted."
    TIMESTAMP_INVALID = "The {0} contains an invalid timestamp."
    TIMESTAMP_NO_CERT = "The {0}'s timestamp's signing certificate is missing."
    TIMESTAMP_SIGNATURE_INVALID = "The {0}'s timestamp's signature is invalid."
    TIMESTAMP_INTEGRITY = "The {0}'s timestamp integrity check failed."
    TIMESTAMP_CERT_ALGORITHM = "The {0}'s timestamp's certificate has an unsupported signature algorithm."
    TIMESTAMP_KEY_TOO_SHORT = "The {0}'s timestamp's certificate does not meet a minimum public key length requirement."
    TIMESTAMP_DIGEST_ALGORITHM = "The {0}'s timestamp's signature has an unsupported digest algorithm."
    TIMESTAMP_NOT_YET_VALID = "The {0}'s timestamp's signing certificate is not yet valid."
    TIMESTAMP_IMPRINT_ALGORITHM = "The {0}'s timestamp's message imprint uses an unsupported hash algorithm."
    TIMESTAMP_GENTIME_OUTSIDE = (
        "The {0}'s timestamp's generalized time is outside the timestamping certificate's validity period."
    )
    TIMESTAMP_UNTRUSTED_ROOT = "The {0}'s timestamping certificate is not trusted by the trust provider."
    TIMESTAMP_CHAIN_ISSUE = "The {0}'s timestamp found a chain building issue: {1}"
    NOT_IN_FINGERPRINT_LIST = "The package signature did not match any of the allowed certificate fingerprints."
    NOT_TRUSTED_SIGNER = "This package is signed but not by a trusted signer."
    NO_TRUSTED_SIGNERS = (
        "signatureValidationMode is set to require, so packages are allowed only if signed by trusted signers; "
        "however, no trusted signers were specified."
    )
    REQUIRE_MODE_UNSIGNED = (
        "signatureValidationMode is set to require, so packages are allowed only if signed by trusted signers; "
        "however, this package is unsigned."
    )
    REPO_ALL_SIGNED_UNSIGNED = (
        "This repository indicated that all its packages are repository signed; however, this package is unsigned."
    )
    REPO_NO_CERTIFICATES = (
        "This repository indicated that all its packages are repository signed; however, it listed no signing "
        "certificates."
    )
    REPO_CERT_NOT_LISTED = "This package was not repository signed with a certificate listed by this repository."
    COUNTERSIGNATURE_REQUIRED = "The package is required to have a repository countersignature, but it has none."
