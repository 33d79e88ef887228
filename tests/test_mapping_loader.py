"""Mapping files: validation errors name the file, line, column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import MappingError
from bridge.mapping.loader import load_dir, load_file

GOOD = """\
id: csat-gap
title: CSAT below target
audience:
  department: Customer Service
when:
  kpi:
    metric: csat
    below: target
recommend:
  - site: moodle
    course: CS-101
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(MappingError) as info:
        load_file(path)
    return info.value.problems


def test_valid_file_loads(tmp_path: Path) -> None:
    loaded = load_file(write(tmp_path, "a.yaml", GOOD))
    assert loaded.mapping.id == "csat-gap"
    assert loaded.mapping.audience.department == ["Customer Service"]
    assert loaded.mapping.recommend[0].channels == ["message"]


def test_typo_in_field_name_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "typo.yaml", GOOD.replace("    metric: csat", "    metirc: csat"))
    found = problems(path)
    assert any(
        p.startswith(f"{path}:7:5: when.kpi.metirc: unknown field (did you mean 'metric'?)") for p in found
    ), found
    assert any("when.kpi.metric: required field is missing" in p for p in found)


def test_misspelt_section_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "sec.yaml", GOOD + "folow_up:\n  remind_after_days: [3]\n")
    (problem,) = problems(path)
    assert problem == f"{path}:12:1: folow_up: unknown field (did you mean 'follow_up'?)"


def test_two_trigger_kinds_in_one_block_is_an_error(tmp_path: Path) -> None:
    text = GOOD.replace("  kpi:\n", "  kpi_trend:\n    metric: csat\n    fell_by: 1\n  kpi:\n")
    (problem,) = problems(write(tmp_path, "two.yaml", text))
    assert "when: a trigger has kpi, kpi_trend" in problem


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "bad.yaml", "id: x\ntitle: [unclosed\n"))
    assert ":3:1: not valid YAML" in problem or ":2:" in problem


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "dup.yaml", GOOD + "title: again\n"))
    assert ":12:1: key 'title' appears twice" in problem


def test_template_error_is_reported_at_the_template(tmp_path: Path) -> None:
    text = GOOD + "messages:\n  recommend:\n    subject: Hi {{ persn.first_name }}\n    body: x\n"
    (problem,) = problems(write(tmp_path, "tpl.yaml", text))
    assert ":14:5: messages.recommend.subject: template error" in problem
    assert "persn" in problem


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    (problem,) = problems(write(tmp_path, "bomb.yaml", "\n".join(lines) + "\n"))
    assert "more than" in problem


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes("title: caf\xe9\n".encode("latin-1"))
    (problem,) = problems(path)
    assert "not UTF-8" in problem


def test_directory_with_duplicate_ids_fails_as_a_whole(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    with pytest.raises(MappingError) as info:
        load_dir(tmp_path)
    assert "already used" in info.value.problems[0]


def test_shipped_examples_are_valid() -> None:
    loaded = load_dir(Path(__file__).parents[1] / "mappings")
    assert len(loaded.items) >= 5


def test_shipped_json_schema_is_current() -> None:
    import json

    from bridge.mapping.model import json_schema

    shipped = json.loads((Path(__file__).parents[1] / "mappings" / "schema.json").read_text())
    assert shipped == json_schema(), "regenerate with: lmsbridge schema > mappings/schema.json"
