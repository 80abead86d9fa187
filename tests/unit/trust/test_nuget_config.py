# ruff: noqa: E501  (XML and JSON test data reads better unwrapped)
"""nuget.config: lossless round trips, NuGet's validation errors, the file chain and its merge (spec §7.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.errors import TrustConfigError
from nuseal.trust.nuget_config import (
    DEFAULT_USER_CONFIG,
    USER_CONFIG_RELATIVE,
    ConfigFile,
    NuGetSettings,
    config_chain,
)
from nuseal.trust.trusted_signers import (
    SignatureValidationMode,
    SignerKind,
    TrustedCertificate,
    TrustedSigner,
)
from nuseal.verify.policy import HashAlgorithmName

MS = "3F9001EA83C560D712C24CF213C3D312CB3BFF51EE89435D3430BD06B5D0EECE"
NUGET_ORG_2018 = "0E5F38F57DC1BCC806D8494F4F90FBCEDD988B46760709CBEEC6F4219AA6157D"

RICH = """<?xml version="1.0" encoding="utf-8"?>
<!-- a comment before the root -->
<configuration>
  <!-- sources -->
  <packageSources>
    <clear />
    <add key="feed" value="https://example.test/v3/index.json" protocolVersion="3" extra='kept' />
  </packageSources>
  <unknownSection a="1"><x>text &amp; more</x><?pi data?></unknownSection>
  <config>
    <add key="signatureValidationMode" value="Require" />
  </config>
  <packageSourceCredentials>
    <My_x0020_Feed>
      <add key="Username" value="me" />
    </My_x0020_Feed>
  </packageSourceCredentials>
  <trustedSigners>
    <author name="microsoft" custom="attr">
      <certificate fingerprint="{MS}" hashAlgorithm="sha256" allowUntrustedRoot="false" />
      <!-- why we trust them -->
      <unknownChild/>
    </author>
    <repository name="nuget.org" serviceIndex="https://api.nuget.org/v3/index.json">
      <certificate fingerprint="{NUGET_ORG_2018}" hashAlgorithm="SHA256" allowUntrustedRoot="False" />
      <owners>microsoft; aspnet;nuget</owners>
    </repository>
  </trustedSigners>
</configuration>
""".replace("{MS}", MS).replace("{NUGET_ORG_2018}", NUGET_ORG_2018)


def _write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def _author(name: str, fp: str = "AB" * 32, allow: bool = False) -> TrustedSigner:
    return TrustedSigner(SignerKind.AUTHOR, name, (TrustedCertificate(fp, HashAlgorithmName.SHA256, allow),))


# -- reading ---------------------------------------------------------------------------------------


def test_reads_every_known_section(tmp_path: Path) -> None:
    f = ConfigFile.load(_write(tmp_path / "nuget.config", RICH))
    signers = f.trusted_signers()
    assert signers[0] == TrustedSigner(SignerKind.AUTHOR, "microsoft", (TrustedCertificate(MS),))
    repo = signers[1]
    assert repo is not None
    assert repo.kind is SignerKind.REPOSITORY
    assert repo.service_index == "https://api.nuget.org/v3/index.json"
    assert repo.owners == ("microsoft", "aspnet", "nuget")
    assert repo.certificates[0].allow_untrusted_root is False
    sources = f.package_sources()
    assert sources[0] is None  # <clear />
    assert sources[1] is not None and sources[1].protocol_version == "3"
    assert f.config_values() == [("signatureValidationMode", "Require")]
    assert f.package_source_credentials() == {"My Feed": {"Username": "me"}}


@pytest.mark.parametrize(("value", "mode"), [
    ("Require", SignatureValidationMode.REQUIRE),
    ("REQUIRE", SignatureValidationMode.REQUIRE),
    ("accept", SignatureValidationMode.ACCEPT),
    ("nonsense", SignatureValidationMode.ACCEPT),  # NuGet quirk: unparseable means accept
])
def test_signature_validation_mode_is_case_insensitive(tmp_path: Path, value: str, mode: SignatureValidationMode) -> None:
    path = _write(tmp_path / "nuget.config",
                  f'<configuration><config><add key="signatureValidationMode" value="{value}"/></config></configuration>')
    assert NuGetSettings.load(configfile=path).signature_validation_mode() is mode


def test_signature_validation_mode_defaults_to_accept(tmp_path: Path) -> None:
    path = _write(tmp_path / "nuget.config", "<configuration/>")
    assert NuGetSettings.load(configfile=path).signature_validation_mode() is SignatureValidationMode.ACCEPT


# -- validation errors ---------------------------------------------------------------------------------

BAD = {
    "no certificates": ('<author name="lonely"></author>', "must have at least one certificate entry", "lonely"),
    "bad algorithm": (
        '<author name="a"><certificate fingerprint="AA" hashAlgorithm="MD5" allowUntrustedRoot="false"/></author>',
        "unsupported hash algorithm: 'MD5'", "certificate"),
    "missing name": (
        '<author><certificate fingerprint="AA" hashAlgorithm="SHA256" allowUntrustedRoot="false"/></author>',
        "Missing required attribute 'name'", "author"),
    "repository without serviceIndex": (
        '<repository name="r"><certificate fingerprint="AA" hashAlgorithm="SHA256" allowUntrustedRoot="false"/>'
        "</repository>", "Missing required attribute 'serviceIndex'", "'r'"),
    "two owners": (
        '<repository name="r" serviceIndex="https://x/index.json">'
        '<certificate fingerprint="AA" hashAlgorithm="SHA256" allowUntrustedRoot="false"/>'
        "<owners>a</owners><owners>b</owners></repository>", "more than one owners item", "'r'"),
    "empty owners": (
        '<repository name="r" serviceIndex="https://x/index.json">'
        '<certificate fingerprint="AA" hashAlgorithm="SHA256" allowUntrustedRoot="false"/>'
        "<owners>  </owners></repository>", "Owners item must only have text content and cannot be empty", "owners"),
    "missing allowUntrustedRoot": (
        '<author name="a"><certificate fingerprint="AA" hashAlgorithm="SHA256"/></author>',
        "Missing required attribute 'allowUntrustedRoot'", "certificate"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_invalid_trusted_signers_name_file_element_and_line(tmp_path: Path, case: str) -> None:
    item, reason, element = BAD[case]
    path = _write(tmp_path / "nuget.config", f"<configuration>\n<trustedSigners>\n{item}\n</trustedSigners>\n</configuration>")
    with pytest.raises(TrustConfigError) as err:
        ConfigFile.load(path)
    message = str(err.value)
    assert reason in message
    assert str(path) in message
    assert element in message
    assert "line 3" in message


@pytest.mark.parametrize("text", ["<configuration>", "<notconfiguration/>",
                                  '<!DOCTYPE configuration [<!ENTITY x "y">]><configuration/>'])
def test_malformed_files_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(TrustConfigError, match=r"NuGet\.Config"):
        ConfigFile.load(_write(tmp_path / "nuget.config", text))


# -- lossless writing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_unmodified_round_trip_is_byte_identical(tmp_path: Path, newline: str) -> None:
    path = _write(tmp_path / "nuget.config", RICH, newline)
    original = path.read_bytes()
    f = ConfigFile.load(path)
    assert f.to_bytes() == original
    f.save()
    assert path.read_bytes() == original


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_adding_a_signer_changes_only_the_trusted_signers_section(tmp_path: Path, newline: str) -> None:
    path = _write(tmp_path / "nuget.config", RICH, newline)
    original = path.read_bytes().decode("utf-8")
    f = ConfigFile.load(path)
    f.add_trusted_signer(_author("contoso", "CD" * 32, allow=True))
    f.save()
    new = path.read_bytes().decode("utf-8")
    closing = "  </trustedSigners>"
    cut = original.index(closing)
    assert new.startswith(original[:cut])
    assert new.endswith(original[cut:])
    inserted = new[cut: len(new) - len(original) + cut]
    expected = (
        '    <author name="contoso">\n'
        f'      <certificate fingerprint="{"CD" * 32}" hashAlgorithm="SHA256" allowUntrustedRoot="true" />\n'
        "    </author>\n"
    ).replace("\n", newline)
    assert inserted == expected
    reread = ConfigFile.load(path).trusted_signers()
    assert [s.name for s in reread if s] == ["microsoft", "nuget.org", "contoso"]


def test_removing_a_signer_removes_only_its_element(tmp_path: Path) -> None:
    path = _write(tmp_path / "nuget.config", RICH)
    f = ConfigFile.load(path)
    microsoft = f.trusted_signers()[0]
    assert microsoft is not None
    assert f.remove_trusted_signer(microsoft)
    f.save()
    start = RICH.index('    <author name="microsoft"')
    end = RICH.index("    <repository")
    assert path.read_text(encoding="utf-8") == RICH[:start] + RICH[end:]


def test_updating_certificates_keeps_comments_unknown_children_and_attributes(tmp_path: Path) -> None:
    path = _write(tmp_path / "nuget.config", RICH)
    f = ConfigFile.load(path)
    f.update_trusted_signer(TrustedSigner(
        SignerKind.AUTHOR, "microsoft", (TrustedCertificate(MS), TrustedCertificate("EE" * 32)),
    ))
    f.save()
    text = path.read_text(encoding="utf-8")
    assert '<author name="microsoft" custom="attr">' in text
    assert "<!-- why we trust them -->" in text and "<unknownChild/>" in text
    # The existing certificate keeps its original spelling (hashAlgorithm="sha256").
    assert f'<certificate fingerprint="{MS}" hashAlgorithm="sha256" allowUntrustedRoot="false" />' in text
    assert f'<certificate fingerprint="{"EE" * 32}" hashAlgorithm="SHA256" allowUntrustedRoot="false" />' in text
    assert text.startswith(RICH[: RICH.index('    <author name="microsoft"')])
    assert text.endswith(RICH[RICH.index("    <repository"):])


def test_config_value_and_package_source_edits(tmp_path: Path) -> None:
    path = _write(tmp_path / "nuget.config", RICH)
    f = ConfigFile.load(path)
    f.set_config_value("signatureValidationMode", "accept")
    f.add_package_source("local", "https://local.test/index.json", "3")
    assert f.remove_package_source("FEED")
    f.save()
    text = path.read_text(encoding="utf-8")
    assert '    <add key="signatureValidationMode" value="accept" />\n' in text
    assert "example.test" not in text
    assert '<add key="local" value="https://local.test/index.json" protocolVersion="3" />' in text
    assert '<unknownSection a="1"><x>text &amp; more</x><?pi data?></unknownSection>' in text


def test_save_writes_through_a_temporary_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "nuget.config", RICH)
    f = ConfigFile.load(path)
    f.add_trusted_signer(_author("x"))
    f.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuget.config"]


# -- file chain and merge --------------------------------------------------------------------------------

def _cfg(*items: str, section: str = "trustedSigners") -> str:
    return f"<configuration>\n  <{section}>\n" + "".join(f"    {i}\n" for i in items) + f"  </{section}>\n</configuration>\n"


def _author_xml(name: str, fp: str, allow: str = "false") -> str:
    return (f'<author name="{name}"><certificate fingerprint="{fp}" hashAlgorithm="SHA256" '
            f'allowUntrustedRoot="{allow}" /></author>')


def test_chain_is_closest_first_then_user_config(tmp_path: Path) -> None:
    home = tmp_path / "home"
    deep = tmp_path / "work" / "a" / "b"
    deep.mkdir(parents=True)
    top = _write(tmp_path / "work" / "nuget.config", "<configuration/>")
    mid = _write(tmp_path / "work" / "a" / "NuGet.Config", "<configuration/>")
    chain = config_chain(deep, home)
    assert chain[:2] == [mid.resolve(), top.resolve()]
    assert chain[-1] == home / USER_CONFIG_RELATIVE


def test_merge_closest_wins_and_signers_accumulate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    _write(home / USER_CONFIG_RELATIVE, _cfg(_author_xml("user", "11" * 32), _author_xml("shared", "22" * 32)))
    _write(work / "nuget.config",
           _cfg(_author_xml("shared", "33" * 32)).replace(
               "</configuration>", '<config><add key="signatureValidationMode" value="require"/></config>'
                                   "</configuration>"))
    settings = NuGetSettings.load(cwd=work, home=home)
    by_name = {s.name: s for s in settings.trusted_signers()}
    assert set(by_name) == {"user", "shared"}
    assert by_name["shared"].certificates[0].fingerprint == "33" * 32
    assert settings.signature_validation_mode() is SignatureValidationMode.REQUIRE


def test_clear_drops_signers_from_further_files_and_receives_new_items(tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    user = _write(home / USER_CONFIG_RELATIVE, _cfg(_author_xml("user", "11" * 32)))
    local = _write(work / "nuget.config", _cfg("<clear />", _author_xml("local", "22" * 32)))
    settings = NuGetSettings.load(cwd=work, home=home)
    assert [s.name for s in settings.trusted_signers()] == ["local"]
    target = settings.add_trusted_signer(_author("new"))
    assert target.path == local.resolve()
    settings.save()
    assert "new" in local.read_text() and "new" not in user.read_text()


def test_new_items_go_to_the_user_config_which_is_created_like_nuget(tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    local = _write(work / "nuget.config", _cfg(_author_xml("local", "22" * 32)))
    before = local.read_bytes()
    settings = NuGetSettings.load(cwd=work, home=home)
    settings.add_trusted_signer(_author("mine"))
    settings.save()
    assert local.read_bytes() == before
    user_text = (home / USER_CONFIG_RELATIVE).read_text()
    assert user_text.startswith(DEFAULT_USER_CONFIG[: DEFAULT_USER_CONFIG.index("</configuration>")])
    assert '<author name="mine">' in user_text


def test_configfile_means_only_that_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write(home / USER_CONFIG_RELATIVE, _cfg(_author_xml("user", "11" * 32)))
    only = _write(tmp_path / "only.config", _cfg(_author_xml("only", "22" * 32)))
    settings = NuGetSettings.load(configfile=only, cwd=tmp_path, home=home)
    assert [s.name for s in settings.trusted_signers()] == ["only"]
    with pytest.raises(TrustConfigError, match="does not exist"):
        NuGetSettings.load(configfile=tmp_path / "missing.config")


def test_remove_deletes_shadowed_copies_too(tmp_path: Path) -> None:
    home = tmp_path / "home"
    work = tmp_path / "work"
    user = _write(home / USER_CONFIG_RELATIVE, _cfg(_author_xml("dup", "11" * 32)))
    local = _write(work / "nuget.config", _cfg(_author_xml("dup", "22" * 32)))
    settings = NuGetSettings.load(cwd=work, home=home)
    (signer,) = settings.trusted_signers()
    settings.remove_trusted_signer(signer)
    settings.save()
    assert "dup" not in user.read_text() and "dup" not in local.read_text()
