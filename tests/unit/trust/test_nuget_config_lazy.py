"""The user config that does not exist yet (nuseal's own template) is parsed only when its tree is needed (issue 12:
a verification without any nuget.config imports no lxml), and reads exactly as the parsed template does."""

from __future__ import annotations

from pathlib import Path

from nuseal.trust.nuget_config import DEFAULT_USER_CONFIG, USER_CONFIG_RELATIVE, ConfigFile, NuGetSettings


def _settings(tmp_path: Path) -> NuGetSettings:
    (tmp_path / "work").mkdir()
    return NuGetSettings.load(cwd=tmp_path / "work", home=tmp_path / "home")


def test_reading_what_the_template_lacks_does_not_parse_it(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    user = settings.files[-1]
    assert user.path == tmp_path / "home" / USER_CONFIG_RELATIVE and not user.exists
    assert settings.trusted_signers() == [] and settings.config_value("signatureValidationMode") is None
    assert user._tree is None  # not parsed: the template has no <trustedSigners> and no <config>


def test_the_unparsed_template_reads_as_the_parsed_one(tmp_path: Path) -> None:
    lazy = _settings(tmp_path).files[-1]
    eager = ConfigFile(tmp_path / "eager.config", DEFAULT_USER_CONFIG.encode(), exists=True)
    for read in (ConfigFile.trusted_signers, ConfigFile.config_values, ConfigFile.package_sources):
        assert read(lazy) == read(eager)
    assert lazy._tree is not None  # <packageSources> is in the template: reading it parsed the file
    assert [s.name for s in lazy.package_sources() if s is not None] == ["nuget.org"]


def test_an_edit_parses_and_saves_the_template(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    settings.files[-1].set_config_value("signatureValidationMode", "require")
    settings.save()
    saved = (tmp_path / "home" / USER_CONFIG_RELATIVE).read_text()
    assert 'key="signatureValidationMode" value="require"' in saved and "nuget.org" in saved
