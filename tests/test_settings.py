from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lmsbridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.store_url() == f"sqlite:///{tmp_path / 'lmsbridge.db'}"
    assert settings.sites == {}


def test_environment_overrides_file_and_nests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path, '[sites.main]\ntype = "moodle"\nurl = "http://127.0.0.1:1"\n[delivery]\nbatch_size = 10\n'
    )
    monkeypatch.setenv("LMSBRIDGE_DELIVERY__BATCH_SIZE", "25")
    monkeypatch.setenv("LMSBRIDGE_SITES__MAIN__TOKEN", "tok-from-env")
    settings = load_settings(path)
    assert settings.delivery.batch_size == 25
    assert settings.sites["main"].options() == {"url": "http://127.0.0.1:1", "token": "tok-from-env"}
    assert "tok-from-env" in settings.secrets()


def test_secrets_directory(tmp_path: Path) -> None:
    path = write(tmp_path, '[sites.main]\ntype = "moodle"\nurl = "http://127.0.0.1:1"\n')
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "lmsbridge_sites__main__token").write_text("tok-from-file")
    settings = load_settings(path, secrets_dir=secrets)
    assert settings.sites["main"].options()["token"] == "tok-from-file"


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nbatch_sise = 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value) == f"{path}: delivery.batch_sise: unknown setting (did you mean 'batch_size'?)"


def test_bad_value_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery]\nbatch_size = -1\n")
    with pytest.raises(
        ConfigError, match=r"delivery\.batch_size: Input should be greater than or equal to 1"
    ):
        load_settings(path)


def test_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[delivery\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_bad_site_name(tmp_path: Path) -> None:
    path = write(tmp_path, '[sites.Main-Site]\ntype = "moodle"\n')
    with pytest.raises(ConfigError, match="sites: Value error, name 'Main-Site'"):
        load_settings(path)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.toml")


def test_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\nurl = "sqlite:///state/x.db"\n[mappings]\ndir = "rules"\n')
    settings = load_settings(path)
    assert settings.store_url() == f"sqlite:///{tmp_path / 'state' / 'x.db'}"
    assert settings.resolve(settings.mappings.dir) == tmp_path / "rules"


def test_readme_lists_every_setting() -> None:
    from bridge.settings import reference_markdown

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("<!-- settings-reference:start -->\n", 1)[1].split(
        "\n<!-- settings-reference:end -->", 1
    )[0]
    assert section == reference_markdown(), "regenerate with: lmsbridge config reference"


def test_a_bad_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[delivery]\nbatch_size = 10\n")
    monkeypatch.setenv("LMSBRIDGE_DELIVERY__BATCH_SIZE", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith("LMSBRIDGE_DELIVERY__BATCH_SIZE: Input should be a valid integer")
    assert str(path) not in str(info.value)


def test_an_unknown_environment_override_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSBRIDGE_DELIVERY__BATCH_SIZ", "10")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""))
    assert str(info.value) == "LMSBRIDGE_DELIVERY__BATCH_SIZ: unknown setting (did you mean 'batch_size'?)"


def test_a_table_set_as_json_names_the_variable_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMSBRIDGE_DELIVERY", '{"batch_size": 0}')
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""))
    assert str(info.value).startswith("LMSBRIDGE_DELIVERY: batch_size: Input should be greater than")


def test_a_bad_secret_file_names_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "lmsbridge_delivery__batch_size").write_text("lots")
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, ""), secrets_dir=secrets)
    assert str(info.value).startswith(f"{secrets / 'lmsbridge_delivery__batch_size'}: Input should be")


def test_a_bad_connector_override_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge import registry

    path = write(tmp_path, '[sites.main]\ntype = "moodle"\nurl = "http://127.0.0.1:1"\n')
    monkeypatch.setenv("LMSBRIDGE_SITES__MAIN__TOKEN", "t")
    monkeypatch.setenv("LMSBRIDGE_SITES__MAIN__TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError) as info:
        registry.configured(load_settings(path))
    assert str(info.value) == (
        "LMSBRIDGE_SITES__MAIN__TIMEOUT_SECONDS: Input should be a valid number, unable to parse string as a number"
    )
