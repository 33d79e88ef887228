"""Hostile input: every parser that reads outside data, fuzzed with Hypothesis (issue #10).

Moodle answers, HR CSV files, HR JSON answers, mapping YAML and the configuration TOML. Each
input either loads or raises the project's clear error type — a :class:`~bridge.errors.BridgeError`
naming the site, feed, file, row or field, or (for HR rows) a rejected row naming where it came
from — and never hangs (every test has a pytest-timeout bound) or escapes as a raw exception.
HR data that looks like a template or markup stays inert in rendered messages.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from bridge import clock, log, registry
from bridge.cycle import pull_source
from bridge.errors import BridgeError, ConfigError, MappingError, Remedy, SourceError
from bridge.mapping import templates
from bridge.mapping.loader import load_file
from bridge.ports import Batch, PullContext, PullScope
from bridge.settings import load_settings
from connectors.hris.csv_connector import CsvOptions, CsvSource
from connectors.hris.csv_reader import sniff
from connectors.hris.fields import dotted
from connectors.hris.http_json import JsonOptions, JsonSource
from connectors.moodle import errors as moodle_errors
from connectors.moodle.client import MoodleClient
from connectors.moodle.feeds import ReportColumns, parse_report_date
from connectors.moodle.sim.server import Running
from connectors.moodle.source import MoodleSource
from tests.conftest import SIM_TOKEN
from tests.seed import CSAT_MAPPING
from tests.test_cli_e2e import ROOT
from tests.test_faults import Bridge, install

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
TOKEN = "fuzz-token-5d41402abc4b2a76b9719d911017c592"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Anything a JSON parser can hand over: huge integers, NaN and infinities included.
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
DEEP = st.integers(min_value=1, max_value=60_000).map(lambda n: b"[" * n + b"]" * n)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


# ---------------------------------------------------------------------- Moodle answers


@FUZZ
@given(
    body=st.dictionaries(
        st.sampled_from(["exception", "errorcode", "message", "debuginfo"]) | st.text(), JSON_VALUES
    )
)
def test_any_moodle_error_body_becomes_a_typed_error_naming_the_site(body: dict[str, Any]) -> None:
    error = moodle_errors.from_body("main", "core_course_get_courses", body)
    assert isinstance(error, moodle_errors.MoodleError) and isinstance(error, BridgeError)
    assert "'main'" in str(error) and error.remedy in set(Remedy)


MOODLE_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(dumps),
    st.fixed_dictionaries(
        {"exception": JSON_SCALARS, "errorcode": JSON_SCALARS}, optional={"message": JSON_VALUES}
    ).map(dumps),
    st.fixed_dictionaries({"warnings": JSON_VALUES}, optional={"courses": JSON_VALUES}).map(dumps),
    DEEP,
)


@pytest.mark.timeout(60)
@FUZZ
@given(
    status=st.sampled_from([200, 200, 200, 200, 301, 400, 401, 403, 404, 429, 500, 502, 503, 504]),
    body=MOODLE_BODIES,
    retry_after=st.none() | st.text(alphabet="0123456789.-abc ", max_size=6),
    function=st.sampled_from(["core_course_get_courses_by_field", "core_message_send_instant_messages"]),
)
def test_any_moodle_answer_is_data_or_a_clear_error(
    status: int, body: bytes, retry_after: str | None, function: str
) -> None:
    log.configure("debug", "json", io.StringIO())
    client = MoodleClient("main", "http://lms.test", TOKEN, attempts=2, max_wait=0.0)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(
            responses.POST,
            "http://lms.test/webservice/rest/server.php",
            body=body,
            status=status,
            headers=headers,
        )
        try:
            client.call(function)
        except BridgeError as error:
            assert str(error) and TOKEN not in str(error)
            assert "'main'" in str(error)


@FUZZ
@given(
    text=st.text(max_size=40)
    | st.sampled_from(["Tuesday, 3 November 2026, 10:05 AM", "", "Monday, 31 February 2026, 1:00 PM"])
)
def test_report_dates_parse_or_raise_value_error(text: str) -> None:
    try:
        when = parse_report_date(text)
    except ValueError:
        return
    assert when.tzinfo is UTC


@FUZZ
@given(
    headers=st.lists(
        st.text(max_size=12) | st.sampled_from(["ID number", "Course short name", "Time completed"])
    )
)
def test_report_columns_are_found_or_a_configuration_error(headers: list[str]) -> None:
    columns = ReportColumns("ID number", "Email address", "Course short name", "Time completed")
    try:
        found = columns.positions(headers, "main")
    except SourceError as error:
        assert error.remedy is Remedy.FIX_CONFIG and "site 'main'" in str(error)
    else:
        assert all(headers[i] == columns.names[key] for key, i in found.items())


# What a real pull asked and got: replayed below with one part of one answer spoiled.
DROP = object()


def nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes(item, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    if new is DROP and not rest:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k != head}
        return [v for i, v in enumerate(value) if i != head]
    copied = copy.copy(value)
    copied[head] = replaced(value[head], tuple(rest), new)
    return copied


class Replay(MoodleClient):
    """A client that answers from a recording, with one answer spoiled."""

    def __init__(self, recording: list[tuple[str, Any]], spoil: int, path: tuple[Any, ...], new: Any) -> None:
        super().__init__("moodle", "http://lms.test", TOKEN)
        self.answers: dict[str, list[Any]] = {}
        for index, (function, answer) in enumerate(recording):
            given = replaced(answer, path, new) if index == spoil else answer
            self.answers.setdefault(function, []).append(given)

    def call(self, function: str, params: Any = None, **settings: Any) -> Any:
        queue = self.answers.get(function) or [{}]
        return copy.deepcopy(queue.pop(0) if len(queue) > 1 else queue[0])


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bridge, list[tuple[str, Any]]]]:
    from connectors.moodle.simulator import start_in_thread

    sim = start_in_thread(SIM_TOKEN)
    recording: list[tuple[str, Any]] = []
    original = MoodleClient.call

    def recording_call(self: MoodleClient, function: str, params: Any = None, **kw: Any) -> Any:
        answer = original(self, function, params, **kw)
        recording.append((function, copy.deepcopy(answer)))
        return answer

    with pytest.MonkeyPatch.context() as mp:
        bridge = install(tmp_path_factory.mktemp("recorded"), sim.url, mp)
        mp.setattr(MoodleClient, "call", recording_call)
        clock.set_now(NOW)
        for source in ("hr", "moodle"):
            pull_source(bridge.engine, bridge.settings, bridge.mapping_set, _source(bridge, source))
    sim.stop()
    clock.set_now(None)
    try:
        yield bridge, [(f, a) for f, a in recording if not f.startswith("core_message")]
    finally:
        bridge.engine.dispose()


def _source(bridge: Bridge, name: str) -> Any:
    return next(s for s in registry.sources(bridge.settings) if s.name == name)


@pytest.mark.timeout(120)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_any_spoiled_moodle_answer_fails_the_pull_cleanly(
    recorded: tuple[Bridge, list[tuple[str, Any]]], data: st.DataObject
) -> None:
    bridge, recording = recorded
    spoil = data.draw(st.integers(0, len(recording) - 1), label="answer")
    answer = recording[spoil][1]
    path = data.draw(st.sampled_from(list(nodes(answer))), label="where")
    new = data.draw(st.just(DROP) | JSON_VALUES, label="replaced by") if path else data.draw(JSON_VALUES)
    source = MoodleSource("moodle", Replay(recording, spoil, path, new))
    clock.set_now(NOW)
    report = pull_source(bridge.engine, bridge.settings, bridge.mapping_set, source, full=True)
    if report.error is not None:
        assert "'moodle'" in report.error and "\n" not in report.error, report.error


# ---------------------------------------------------------------------- HR CSV

KPI_HEADER = ["Employee Number", "Metric", "Period Start", "Period End", "Value"]
PEOPLE_CSV = (
    "Employee ID,Employee Number,First Name,Last Name,Work Email,Manager Employee Number,Department,"
    "Job Title,Location,Time Zone,Locale,Start Date,Active\n"
    "P1,0001,Ana,Garcia,ana@example.org,,Customer Service,Agent,London,Europe/London,en_GB,2024-01-02,yes\n"
)
CELLS = st.text(max_size=12) | st.sampled_from(
    [
        "0001",
        "csat",
        "2026-10-01",
        "2026-10-31",
        "4,5",
        "4.5",
        "1e999",
        "NaN",
        "-1",
        '"',
        '""',
        "a\nb",
        "\x00",
        ";",
    ]
)
LOCATION = re.compile(r"^(people|kpis)\.csv:\d+$|^person .+$")


def csv_pull(directory: Path, **options: Any) -> list[Batch]:
    source = CsvSource("hr", CsvOptions(people="people.csv", measurements="kpis.csv", **options), directory)
    return list(source.pull(PullContext(cursors={}, scope=PullScope(), now=NOW)))


@pytest.mark.timeout(120)
@FUZZ
@given(data=st.data())
def test_any_hr_csv_loads_or_rejects_rows_by_line(tmp_path: Path, data: st.DataObject) -> None:
    delimiter = data.draw(st.sampled_from([",", ";", "\t", "|", " ", ":"]), label="delimiter")
    header = data.draw(st.permutations(KPI_HEADER) | st.lists(CELLS, max_size=6), label="header")
    rows = data.draw(st.lists(st.lists(CELLS, max_size=7), max_size=8), label="rows")
    buffer = io.StringIO()
    if data.draw(st.booleans(), label="quoted properly"):
        writer = csv.writer(
            buffer, delimiter=delimiter, lineterminator=data.draw(st.sampled_from(["\n", "\r\n"]))
        )
        writer.writerows([header, *rows])
    else:
        buffer.write("\n".join(delimiter.join(r) for r in [header, *rows]))
    encoding = data.draw(
        st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"]), label="written as"
    )
    raw = buffer.getvalue().encode(encoding, errors="replace") + data.draw(
        st.binary(max_size=40), label="tail"
    )
    (tmp_path / "people.csv").write_text(PEOPLE_CSV)
    (tmp_path / "kpis.csv").write_bytes(raw)
    options = {
        "delimiter": data.draw(st.sampled_from(["auto", ",", ";", "\t", "|"]), label="configured delimiter"),
        "encoding": data.draw(st.sampled_from(["utf-8", "cp1252"]), label="configured encoding"),
        "decimal": data.draw(st.sampled_from([".", ","]), label="decimal"),
    }
    for batch in csv_pull(tmp_path, **options):
        for reject in batch.rejected:
            assert LOCATION.match(reject.location), reject.location
            assert reject.reason


@pytest.mark.timeout(30)
def test_a_huge_field_is_reported_with_its_line_and_the_rows_before_load(tmp_path: Path) -> None:
    (tmp_path / "people.csv").write_text(PEOPLE_CSV)
    (tmp_path / "kpis.csv").write_text(
        ",".join(KPI_HEADER)
        + "\n0001,csat,2026-10-01,2026-10-31,4.5\n0001,csat,2026-09-01,2026-09-30,"
        + "9" * 300_000
        + "\n"
    )
    batches = csv_pull(tmp_path)
    loaded = [r for b in batches for r in b.records if getattr(r, "metric", None) == "csat"]
    rejected = {r.location: r.reason for b in batches for r in b.rejected}
    assert len(loaded) == 1
    assert "field larger than field limit" in rejected["kpis.csv:3"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("line", ["'", '"', "',", ",'", "x,'"])
def test_sniffing_a_file_made_to_be_slow_is_quick(tmp_path: Path, line: str) -> None:
    sample = (line + "\n") * (64 * 1024 // (len(line) + 1))
    assert sniff(sample) in ",;\t|"
    (tmp_path / "people.csv").write_text(PEOPLE_CSV)
    (tmp_path / "kpis.csv").write_text(sample)
    csv_pull(tmp_path)  # the whole pull, not just the sniffer


def test_an_unknown_encoding_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="unknown encoding 'no-such-codec'"):
        CsvOptions(people="people.csv", encoding="no-such-codec")


# ---------------------------------------------------------------------- HR JSON

HR_API = "http://hr.test"
PERSON_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON_VALUES,
        "number": JSON_VALUES,
        "name": st.fixed_dictionaries({}, optional={"first": JSON_VALUES}) | JSON_VALUES,
        "email": JSON_VALUES,
        "work": st.fixed_dictionaries({}, optional={"department": JSON_VALUES, "manager": JSON_VALUES}),
        "active": JSON_VALUES,
        "start": JSON_VALUES,
    },
)
KPI_ITEM = st.fixed_dictionaries(
    {},
    optional={
        "emp": JSON_VALUES,
        "kpi": JSON_VALUES,
        "period": st.fixed_dictionaries({}, optional={"from": JSON_VALUES, "to": JSON_VALUES}) | JSON_VALUES,
        "score": JSON_VALUES | st.sampled_from([1e308, float("inf"), float("nan"), 10**400, -0.0]),
    },
)


def api_answers(item: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[int, bytes]]:
    page = st.fixed_dictionaries(
        {"data": st.fixed_dictionaries({"items": st.lists(item | JSON_VALUES, max_size=5)}) | JSON_VALUES},
        optional={
            "next_cursor": JSON_SCALARS,
            "next": JSON_SCALARS | st.sampled_from(["/v1/x?p=2", "http://evil.test/steal", "http://[::1"]),
        },
    )
    body = page.map(dumps) | JSON_VALUES.map(dumps) | st.binary(max_size=60) | DEEP
    status = st.sampled_from([200, 200, 200, 200, 401, 404, 500, 503])
    return st.tuples(status, body)


def json_options(style: str) -> JsonOptions:
    return JsonOptions.model_validate(
        {
            "base_url": HR_API,
            "auth": "bearer",
            "token": TOKEN,
            "attempts": 2,
            "paging": {"style": style, "page_size": 2},
            "people": {
                "path": "/v1/people",
                "items": "data.items",
                "fields": {
                    "person_id": "id",
                    "employee_number": "number",
                    "first_name": "name.first",
                    "email": "email",
                    "department": "work.department",
                    "manager": "work.manager",
                    "active": "active",
                    "start_date": "start",
                },
            },
            "measurements": {
                "path": "/v1/kpis",
                "items": "data.items",
                "fields": {
                    "person": "emp",
                    "metric": "kpi",
                    "period_start": "period.from",
                    "period_end": "period.to",
                    "value": "score",
                },
            },
        }
    )


def pages(first: tuple[int, bytes]) -> Any:
    """The fuzzed answer first, then empty pages: paging always comes to an end."""
    served: list[int] = []

    def callback(request: Any) -> tuple[int, dict[str, str], bytes]:
        served.append(1)
        if len(served) == 1:
            return first[0], {"Content-Type": "application/json"}, first[1]
        return 200, {}, b'{"data": {"items": []}}'

    return callback


@pytest.mark.timeout(120)
@FUZZ
@given(
    people=api_answers(PERSON_ITEM),
    kpis=api_answers(KPI_ITEM),
    style=st.sampled_from(["none", "offset", "page", "cursor", "next_link"]),
)
def test_any_hr_api_answer_loads_rejects_rows_or_fails_the_feed_clearly(
    people: tuple[int, bytes], kpis: tuple[int, bytes], style: str
) -> None:
    source = JsonSource("hrapi", json_options(style), max_wait=0.0)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(
            responses.GET, re.compile(re.escape(HR_API) + "/v1/people.*"), callback=pages(people)
        )
        mock.add_callback(responses.GET, re.compile(re.escape(HR_API) + "/v1/kpis.*"), callback=pages(kpis))
        try:
            batches = list(source.pull(PullContext(cursors={}, scope=PullScope(), now=NOW)))
        except SourceError as error:
            assert str(error).startswith("feed 'hrapi': ") and TOKEN not in str(error)
            return
        finally:
            assert all(call.request.url.startswith(HR_API + "/") for call in mock.calls), (
                "credentials left the site"
            )
    for batch in batches:
        for reject in batch.rejected:
            assert reject.location.startswith(("/v1/people item ", "/v1/kpis item ", "person ")), (
                reject.location
            )
            assert reject.reason


@responses.activate
def test_a_next_link_to_another_site_is_refused_and_gets_no_credentials() -> None:
    responses.get(
        HR_API + "/v1/people",
        json={"data": {"items": [{"id": "E1"}, {"id": "E2"}]}, "next": "http://evil.test/v1/people"},
    )
    responses.get("http://evil.test/v1/people", json={"data": {"items": []}})
    with pytest.raises(SourceError, match=r"next-page link that leaves http://hr\.test"):
        list(
            JsonSource("hrapi", json_options("next_link"), max_wait=0.0).pull(
                PullContext({}, PullScope(), NOW)
            )
        )
    assert [c.request.url for c in responses.calls] == [HR_API + "/v1/people"]


@responses.activate
def test_an_api_that_pages_in_a_circle_is_stopped() -> None:
    responses.get(
        HR_API + "/v1/people", json={"data": {"items": [{"id": "E1"}, {"id": "E2"}]}, "next_cursor": "same"}
    )
    with pytest.raises(SourceError, match="pointed back to a page it already gave"):
        list(
            JsonSource("hrapi", json_options("cursor"), max_wait=0.0).pull(PullContext({}, PullScope(), NOW))
        )
    assert len(responses.calls) == 2


@responses.activate
def test_numbers_no_kpi_can_hold_are_rejected_by_item() -> None:
    period = {"from": "2026-10-01", "to": "2026-10-31"}
    kpis = [
        {"emp": "0001", "kpi": "csat", "period": period, "score": s} for s in (4.5, 10**400, float("nan"))
    ]
    responses.get(HR_API + "/v1/people", json={"data": {"items": [{"id": "E1", "number": "0001"}]}})
    responses.get(HR_API + "/v1/kpis", body=dumps({"data": {"items": kpis}}))
    batches = list(
        JsonSource("hrapi", json_options("none"), max_wait=0.0).pull(PullContext({}, PullScope(), NOW))
    )
    loaded = [r for b in batches for r in b.records if getattr(r, "metric", None)]
    rejected = {r.location: r.reason for b in batches for r in b.rejected}
    assert [m.value for m in loaded] == [4.5]
    assert rejected == {
        "/v1/kpis item 2 (0001)": "value is too large a number",
        "/v1/kpis item 3 (0001)": "value nan is not a finite number",
    }


@FUZZ
@given(
    data=JSON_VALUES,
    path=st.lists(
        st.text(max_size=4) | st.integers(-2, 5).map(str) | st.sampled_from(["\u00b2", "\u0661", "0"]),
        max_size=5,
    ),
)
def test_field_paths_into_any_json_find_a_value_or_nothing(data: Any, path: list[str]) -> None:
    dotted(data, ".".join(path))


# ---------------------------------------------------------------------- mapping YAML


def mapping_file(directory: Path, raw: bytes) -> Path:
    path = directory / "fuzzed.yaml"
    path.write_bytes(raw)
    return path


def loads_or_names_the_file(path: Path) -> None:
    try:
        load_file(path)
    except MappingError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.startswith(f"{path}:") or problem.startswith(f"{path} "), problem
            problem.encode("utf-8")  # printable: no lone surrogates reach the terminal


@pytest.mark.timeout(60)
@FUZZ
@given(raw=st.binary(max_size=400))
def test_any_bytes_as_a_mapping_file(tmp_path: Path, raw: bytes) -> None:
    loads_or_names_the_file(mapping_file(tmp_path, raw))


YAML_TEXT = st.text(
    alphabet=st.sampled_from([*"ab1:-[]{}&*!|>'\"#%@`?,. \n\t\\", "\u00e9", "\ufeff", "\x85"]),
    max_size=200,
)


@pytest.mark.timeout(60)
@FUZZ
@given(text=YAML_TEXT)
def test_any_yaml_like_text_as_a_mapping_file(tmp_path: Path, text: str) -> None:
    loads_or_names_the_file(mapping_file(tmp_path, text.encode("utf-8")))


YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=15)
    | st.dates()
    | st.sampled_from(["target", "csat", "{{ 7*7 }}", "{% for x in y %}", "mon", "00:00-24:00", "CS-101"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=10,
)


@pytest.mark.timeout(60)
@FUZZ
@given(data=st.data())
def test_any_change_to_a_valid_mapping_loads_or_names_file_line_and_field(
    tmp_path: Path, data: st.DataObject
) -> None:
    mapping = yaml.safe_load(CSAT_MAPPING)
    path = data.draw(st.sampled_from(list(nodes(mapping))), label="where")
    new = data.draw(st.just(DROP) | YAML_VALUES, label="new") if path else data.draw(YAML_VALUES)
    document = yaml.safe_dump(replaced(mapping, path, new), allow_unicode=True)
    loads_or_names_the_file(mapping_file(tmp_path, document.encode("utf-8")))


def _laughs(levels: int, width: int) -> bytes:
    lines = [f'l0: &l0 "{"lol" * 100}"']
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


HOSTILE_YAML = {
    "billion-laughs": _laughs(10, 10),
    "quadratic-blowup": b'a: &a "' + b"x" * 100_000 + b'"\nb: [' + b",".join([b"*a"] * 5000) + b"]\n",
    "deep-flow-nesting": b"id: x\nwhen: " + b"[" * 200_000 + b"]" * 200_000 + b"\n",
    "deep-block-nesting": b"".join(b"  " * i + b"k:\n" for i in range(600)),
    "unclosed-brackets": b"id: x\nwhen: " + b"{a: [" * 100_000,
    "larger-than-a-megabyte": b"id: x\ntitle: " + b"x" * 1_100_000 + b"\n",
    "more-values-than-allowed": b"id: x\nlist: [" + b"1," * 50_001 + b"]\n",
    "latin-1": "id: x\ntitle: caf\xe9\n".encode("latin-1"),
    "utf-16": "id: x\ntitle: t\n".encode("utf-16"),
    "nul-byte": b"id: x\ntitle: \x00\n",
    "impossible-date": b"id: x\ntitle: t\nstarts: 2026-13-45\n",
    "5000-digit-number": b"id: x\ntitle: " + b"9" * 5000 + b"\n",
    "lone-surrogate": b'id: x\n"\\ud800": t\n',
    "python-object-tag": b"id: !!python/object/apply:os.system ['true']\n",
    "merge-key": b"base: &b {title: t}\nm:\n  <<: *b\n",
    "two-documents": b"id: x\n---\nid: y\n",
    "a-list-not-a-mapping": b"- id: x\n",
    "tabs": b"id: x\n\ttitle: t\n",
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("raw", HOSTILE_YAML.values(), ids=HOSTILE_YAML.keys())
def test_hostile_mapping_files_are_refused_with_the_file_named(tmp_path: Path, raw: bytes) -> None:
    path = mapping_file(tmp_path, raw)
    with pytest.raises(MappingError) as info:
        load_file(path)
    assert all(problem.startswith(str(path)) for problem in info.value.problems)
    assert len("\n".join(info.value.problems)) < 2000


# ---------------------------------------------------------------------- configuration TOML


def config_loads_or_names_the_file(path: Path) -> None:
    try:
        settings_ = load_settings(path)
        settings_.store_url()
        settings_.secrets()
        registry.configured(settings_)  # what every command does next: each connector's options
    except ConfigError as error:
        assert str(error).startswith(str(path)), str(error)
        str(error).encode("utf-8")


@pytest.mark.timeout(60)
@FUZZ
@given(raw=st.binary(max_size=300))
def test_any_bytes_as_the_configuration(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "lmsbridge.toml"
    path.write_bytes(raw)
    config_loads_or_names_the_file(path)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, int | date | time):
        return value.isoformat() if isinstance(value, date | time) else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SETTING_KEYS = st.sampled_from(
    [
        "type",
        "url",
        "token",
        "people",
        "measurements",
        "encoding",
        "delimiter",
        "base_url",
        "auth",
        "listen",
        "level",
        "format",
        "batch_size",
        "dir",
        "target",
        "direction",
        "timeout_seconds",
        "enabled",
        "poll_every_seconds",
        "poll_cron",
        "match",
        "host",
        "port",
        "password",
        "from_address",
        "paging",
    ]
) | st.text(max_size=8)
TOML_VALUES = st.recursive(
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.text(max_size=15)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.times()
    | st.sampled_from(
        [
            "moodle",
            "csv",
            "json_http",
            "sql",
            "smtp",
            "totara",
            "http://lms.test",
            "sqlite://",
            "none",
            "bearer",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SETTING_KEYS, inner, max_size=3),
    max_leaves=10,
)
SECTIONS = st.sampled_from(
    ["store", "mappings", "log", "delivery", "identity", "daemon", "metrics", "sites", "feeds", "channels"]
) | st.text(max_size=6)


@pytest.mark.timeout(60)
@FUZZ
@given(
    document=st.dictionaries(
        SECTIONS,
        st.dictionaries(SETTING_KEYS, TOML_VALUES, max_size=4)
        | st.dictionaries(
            st.sampled_from(["moodle", "hr", "main", "email", "X"]),
            st.dictionaries(SETTING_KEYS, TOML_VALUES, max_size=5),
            max_size=2,
        ),
        max_size=4,
    )
)
def test_any_toml_configuration_loads_or_names_the_file_and_key(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    path = tmp_path / "lmsbridge.toml"
    path.write_text("\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in document.items()) + "\n")
    config_loads_or_names_the_file(path)


HOSTILE_TOML = {
    "deep-arrays": b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "deep-tables": b"a = " + b"{b = " * 10_000 + b"1" + b"}" * 10_000 + b"\n",
    "secrets-dir-from-the-file": b'_secrets_dir = "/etc"\n',
    "env-prefix-from-the-file": b'_env_prefix = "OTHER_"\n',
    "latin-1": 'log = {level = "d\xe9bug"}\n'.encode("latin-1"),
    "nul-byte": b'[log]\nlevel = "\x00"\n',
    "unknown-encoding-for-a-feed": b'[feeds.hr]\ntype = "csv"\npeople = "p.csv"\nencoding = "no-such-codec"\n',
    "a-site-that-is-a-string": b'sites = "moodle"\n',
    "nan-batch-size": b"[delivery]\nbatch_size = nan\n",
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("raw", HOSTILE_TOML.values(), ids=HOSTILE_TOML.keys())
def test_hostile_configuration_is_refused_naming_the_file(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "lmsbridge.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        settings_ = load_settings(path)
        registry.configured(settings_)
    assert str(info.value).startswith(str(path)) and len(str(info.value)) < 2000


def test_a_configuration_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "lmsbridge.toml"
    path.write_bytes("\ufeff[log]\nlevel = 'debug'\n".encode())
    assert load_settings(path).log.level == "debug"


# ---------------------------------------------------------------------- template injection

INJECTIONS = [
    "{{ 7*7 }}",
    "<script>alert(1)</script>",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    '"><img src=x onerror=alert(1)>',
    "{{ link('javascript:alert(1)', 'x') }}",
    "&lt;b&gt;",
]
PLACEHOLDER = "Zqxvbnm"


def context(name: str) -> dict[str, Any]:
    ctx = copy.deepcopy(templates.SAMPLE_CONTEXT)
    ctx["person"] = {"first_name": name, "last_name": name, "full_name": f"{name} {name}"}
    ctx["manager"] = {"first_name": name, "last_name": "M", "full_name": f"{name} M"}
    ctx["learning"] = {**ctx["learning"], "name": name}
    ctx["reason"] = name
    return ctx


@pytest.mark.timeout(60)
@FUZZ
@given(
    name=st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
    )
    | st.sampled_from(INJECTIONS)
)
@example(name="{{ 7*7 }}")
@example(name="<script>alert(1)</script>")
def test_hr_data_is_inert_in_every_message(name: str) -> None:
    """Rendering with any name equals rendering with a plain word, then putting the (escaped) name in."""
    for kind in templates.DEFAULTS:
        template = templates.template_for(None, kind, None)  # type: ignore[arg-type]
        hostile, plain = (
            templates.render(template, context(name)),
            templates.render(template, context(PLACEHOLDER)),
        )
        # (paragraphs are trimmed and subjects are one line: compare ignoring whitespace)
        assert words(hostile.html) == words(plain.html.replace(PLACEHOLDER, str(escape(name))))
        assert words(hostile.text) == words(plain.text.replace(PLACEHOLDER, name))
        assert words(hostile.subject) == words(plain.subject.replace(PLACEHOLDER, name))


def words(text: str) -> str:
    return "".join(text.split())


@pytest.mark.timeout(60)
def test_hostile_names_from_hr_reach_learners_as_plain_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moodle: Running
) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    people = list(csv.reader((ROOT / "examples" / "hr" / "people.csv").open()))
    for number, row in enumerate(people[1:]):
        row[2] = INJECTIONS[number % 2]  # First Name
    with (hr / "people.csv").open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(people)
    bridge = install(tmp_path, moodle.url, monkeypatch)
    bridge.settings.feeds["hr"].people = str(hr / "people.csv")  # type: ignore[attr-defined]
    try:
        report = bridge.cycle(NOW)
        assert report.delivery is not None and report.delivery.states["sent"] > 0
    finally:
        bridge.engine.dispose()
    texts = [str(m["text"]) for m in moodle.state.messages]
    assert texts
    assert not any("<script>" in text or "Hello 49" in text for text in texts)
    assert any("Hello {{ 7*7 }}," in text for text in texts)
    assert any("Hello &lt;script&gt;alert(1)&lt;/script&gt;," in text for text in texts)
