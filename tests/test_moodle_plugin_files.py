"""The companion Moodle plugins are consistent with themselves and with the simulator.

Moodle itself is not here (the lead runs the plugins' own PHPUnit tests on a real site): these
checks read the PHP and XML as text and catch what would fail on install or at the first call —
a function declared without its class or methods, a table nobody uses, a capability or string
without its language string, a syntax error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from connectors.moodle.sim import plugin as sim_plugin
from connectors.moodle.sim.capabilities import PLUGIN_ROLE
from connectors.moodle.sim.functions import REGISTRY
from connectors.moodle.sim.plugin_state import VERSION

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "moodle" / "local_lmsbridge"
BLOCK = ROOT / "moodle" / "block_lmsbridge"
PLUGINS = {"local_lmsbridge": LOCAL, "block_lmsbridge": BLOCK}


def php_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.php"))


def lang_keys(component: str) -> set[str]:
    text = (PLUGINS[component] / "lang" / "en" / f"{component}.php").read_text()
    return set(re.findall(r"^\$string\['([^']+)'\]\s*=", text, re.M))


def version_of(folder: Path) -> dict[str, str]:
    return dict(re.findall(r"^\$plugin->(\w+)\s*=\s*(.+?);", (folder / "version.php").read_text(), re.M))


def declared_functions() -> dict[str, str]:
    """function name -> class, from db/services.php."""
    text = (LOCAL / "db" / "services.php").read_text()
    return dict(re.findall(r"'(local_lmsbridge_\w+)'\s*=>\s*\[\s*'classname'\s*=>\s*'([^']+)'", text))


def capabilities(folder: Path) -> set[str]:
    return set(
        re.findall(
            r"^\s*'([a-z]+/[a-z]+:[a-z]+)'\s*=>\s*\[", (folder / "db" / "access.php").read_text(), re.M
        )
    )


def test_every_php_file_starts_with_the_gpl_header() -> None:
    for path in php_files(LOCAL) + php_files(BLOCK):
        head = path.read_text()[:600]
        assert head.startswith("<?php\n// This file is part of Moodle"), path
        assert "either version 3 of the License, or\n// (at your option) any later version." in head, path


@pytest.mark.skipif(shutil.which("php") is None, reason="php-cli is not installed (make test installs it)")
def test_every_php_file_parses() -> None:
    for path in php_files(LOCAL) + php_files(BLOCK):
        result = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_versions_name_their_component_and_supported_moodle() -> None:
    for component, folder in PLUGINS.items():
        version = version_of(folder)
        assert version["component"] == f"'{component}'"
        assert version["requires"] == "2022112800"  # Moodle 4.1 LTS
        assert version["supported"] == "[401, 501]"
    assert int(version_of(LOCAL)["version"]) == VERSION  # the simulator is this version
    assert f"'local_lmsbridge' => {VERSION}" in (BLOCK / "version.php").read_text()


def test_every_declared_function_has_its_class_and_methods() -> None:
    functions = declared_functions()
    assert set(functions) == {
        "local_lmsbridge_get_changes",
        "local_lmsbridge_set_recommendations",
        "local_lmsbridge_get_info",
    }
    for name, classname in functions.items():
        namespace, _, short = classname.rpartition("\\")
        path = LOCAL / "classes" / "external" / f"{short}.php"
        text = path.read_text()
        assert namespace == "local_lmsbridge\\external" and f"namespace {namespace};" in text, name
        assert re.search(rf"^class {short} extends external_api \{{", text, re.M), name
        for method in ("execute_parameters", "execute", "execute_returns"):
            assert re.search(rf"public static function {method}\(", text), f"{name}: no {method}()"


def test_the_simulator_implements_exactly_the_plugins_functions_and_capabilities() -> None:
    simulated = {name for name, f in REGISTRY.items() if f.plugin == sim_plugin.PLUGIN}
    assert simulated == set(declared_functions())
    text = (LOCAL / "db" / "services.php").read_text()
    for name in simulated:
        block = text.split(f"'{name}'", 1)[1].split("],", 1)[0]
        declared = re.search(r"'capabilities'\s*=>\s*'([^']+)'", block)
        assert declared is not None and set(REGISTRY[name].requires) == {declared.group(1)}, name
    assert capabilities(LOCAL) >= PLUGIN_ROLE


def test_every_table_in_install_xml_is_used_by_the_classes() -> None:
    tables = [t.get("NAME") for t in ET.parse(LOCAL / "db" / "install.xml").getroot().iter("TABLE")]
    assert tables == ["local_lmsbridge_changes", "local_lmsbridge_recs"]
    code = "".join(p.read_text() for p in php_files(LOCAL / "classes"))
    for table in tables:
        assert f"'{table}'" in code, f"{table} is declared but no class uses it"


def test_every_observer_callback_exists() -> None:
    events = (LOCAL / "db" / "events.php").read_text()
    observer = (LOCAL / "classes" / "observer.php").read_text()
    callbacks = re.findall(r"'callback'\s*=>\s*'\\local_lmsbridge\\observer::(\w+)'", events)
    assert len(callbacks) == 9
    for callback in callbacks:
        assert re.search(rf"public static function {callback}\(", observer), callback


def test_every_capability_has_its_language_string() -> None:
    for component, folder in PLUGINS.items():
        keys = lang_keys(component)
        for capability in capabilities(folder):
            assert capability.split("/", 1)[1] in keys, f"{capability}: no string in lang/en/{component}.php"


def test_every_string_the_code_uses_exists() -> None:
    for component, folder in PLUGINS.items():
        keys = lang_keys(component)
        for path in php_files(folder):
            text = path.read_text()
            used = set(re.findall(rf"get_string\('([^']+)',\s*'{component}'", text))
            if path.name == "provider.php":  # metadata descriptions are string keys of the component
                used |= set(re.findall(r"'(privacy:[a-z:_]+)'", text))
            missing = used - keys
            assert not missing, (
                f"{path.relative_to(ROOT)} uses strings missing from lang/en: {sorted(missing)}"
            )


def test_make_plugin_builds_zips_with_the_folder_moodle_expects(tmp_path: Path) -> None:
    subprocess.run(["make", "-s", "plugin", f"BUILD={tmp_path}"], cwd=ROOT, check=True, capture_output=True)
    for component, folder in PLUGINS.items():
        with zipfile.ZipFile(tmp_path / f"{component}.zip") as archive:
            names = set(archive.namelist())
        assert "lmsbridge/version.php" in names
        expected = {f"lmsbridge/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()}
        assert expected <= names
