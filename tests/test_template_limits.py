"""Template bombs: a mapping template can neither hang nor exhaust memory, in `validate`, at
decide time or when a message is sent; ordinary templates render exactly as before."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import Engine

from bridge import clock
from bridge.act import Actor
from bridge.compose import DIGEST_TEMPLATE
from bridge.decide import evaluate
from bridge.delivery import deliver
from bridge.followups import follow_up
from bridge.mapping import templates
from bridge.mapping.loader import load_dir
from bridge.mapping.model import MessageTemplate
from bridge.mapping.yamlsource import load
from bridge.records import LmsUser, Person
from bridge.store import schema as t
from tests.seed import CS101, CSAT_MAPPING, agent, link, rows, settings, store, write_mapping
from tests.test_cli_e2e import ROOT, config
from tests.test_delivery import FakeSink

LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
BOMBS = {  # what the issue found, and what each is refused with
    "nested-loops": (LOOPS, "it ran more than 100,000 steps"),
    "multiply": ("{{ 'x' * 3000000000 }}", "it would build a value of more than 1,000,000 characters"),
    "output": (
        "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
        "it would write more than 1,000,000 characters",
    ),
    "power": ("{{ 9 ** 999999999 }}", "it would build a number of more than 64,000 bits"),
}


def bomb_mapping(body: str, mapping_id: str = "bomb") -> str:
    base = (ROOT / "mappings" / "safety-refresher.yaml").read_text()
    quoted = body.replace("'", "''")
    return (
        base.replace("id: safety-refresher", f"id: {mapping_id}")
        + f"\nmessages:\n  recommend:\n    subject: 'Hello'\n    body: '{quoted}'\n"
    )


def _cap_memory() -> None:  # a regression must fail the test, not take the machine's memory
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", BOMBS)
def test_validate_refuses_a_template_bomb_quickly_naming_file_mapping_and_limit(
    tmp_path: Path, name: str
) -> None:
    body, limit = BOMBS[name]
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bomb.yaml").write_text(bomb_mapping(body))
    cfg = config(tmp_path, "http://127.0.0.1:9")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--config", str(cfg), "validate", str(rules)],
        capture_output=True,
        text=True,
        env={**os.environ, "LMSBRIDGE_SITES__MOODLE__TOKEN": "x", "COLUMNS": "300"},
        timeout=25,
        preexec_fn=_cap_memory,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output and "MemoryError" not in output, output
    assert f"{rules / 'bomb.yaml'}:" in output, output  # the file, then line:column and field
    assert "messages.recommend.body: template of mapping 'bomb' exceeded a limit: " in output, output
    assert limit in output, output
    assert elapsed < 20, elapsed


MORE_BOMBS = {
    "loops over a variable": "{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}",
    "concatenation": "{% set a = 'x' * 1000 %}{% set b = a~a~a~a %}{% set c = b~b~b~b %}{% set d = c~c~c~c %}"
    "{% set e = d~d~d~d %}{{ e~e~e~e }}",
    "string doubling": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s }}",
    "captured in a set block": "{% set a %}{% for i in range(100000) %}"
    + "x" * 60
    + "{% endfor %}{% endset %}",
    "list repetition": "{{ ['x' * 100000] * 100000 }}",
    "center": "{{ 'x'|center(3000000000) }}",
    "ljust": "{{ 'x'.ljust(3000000000) }}",
    "str.format width": "{{ '{:>3000000000}'.format('x') }}",
    "percent width": "{{ '%3000000000s' % 'x' }}",
    "replace": "{{ ('x' * 100000)|replace('', 'y' * 1000) }}",
    "join": "{{ range(100000)|join('y' * 100000) }}",
    "lazy map joined": "{{ range(100000)|map('center', 100000)|join }}",
    "str.join": "{{ ('y' * 100000).join(['a'] * 100000) }}",
    "bytes": "{{ 'x'.encode().center(3000000000) }}",
    "translate": "{{ ('x' * 100000).translate({120: 'y' * 100000}) }}",
    "wordwrap": "{{ ('x ' * 100000)|wordwrap(1, wrapstring='y' * 1000) }}",
    "range": "{{ range(10**9)|list }}",
    "macro recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "macro fan-out": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("body", MORE_BOMBS.values(), ids=MORE_BOMBS.keys())
def test_every_other_way_to_grow_or_spin_is_refused(body: str) -> None:
    started = time.monotonic()
    with pytest.raises(templates.TemplateFailed, match="exceeded a limit"):
        templates.render(MessageTemplate(subject="s", body=body), templates.SAMPLE_CONTEXT)
    assert time.monotonic() - started < 5


def test_an_error_in_a_template_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(bomb_mapping("{{ 1 / 0 }}"))
    with pytest.raises(Exception, match=r"messages.recommend.body: template error: ZeroDivisionError"):
        load_dir(tmp_path)


# ---------------------------------------------------------------------- nothing else changes

FEATURES = [  # what an administrator may reasonably write, rendered by the bounded and the plain sandbox
    "{% for x in ['a', 'b'] %}{{ loop.index }}. {{ x|upper }}{% if not loop.last %}, {% endif %}{% endfor %}",
    "{{ '%.1f' % 3.14159 }} {{ '{} of {}'.format(1, 2) }} {{ 'a' ~ 'b' ~ 3 }} {{ 2 ** 10 }} {{ 'ab' * 3 }}",
    "{% set n = namespace(total=0) %}{% for i in range(5) %}{% set n.total = n.total + i %}{% endfor %}{{ n.total }}",
    "{% macro tag(t) %}[{{ t }}]{% endmacro %}{{ tag(person.first_name) }}{{ tag(learning.name|title) }}",
    "{% set greeting %}Hello {{ person.full_name }}{% endset %}{{ greeting|replace('Hello', 'Hi') }}",
    "{{ [3, 1, 2]|sort|join(', ') }} {{ learning.name|truncate(9) }} {{ reason|wordwrap(20) }}",
    "{{ range(3)|list }} {{ {'a': 1} }} {{ none }} {{ learning.name|center(20) }}|",
    "{% filter upper %}{{ link(learning.url, learning.name) }}{% endfilter %} <b>{{ '<i>' }}</b>",
    "{{ range(10)|batch(3)|list }} {{ [1, 2, 3]|sum }} {{ days_left // 7 }} {{ (days_left / 7)|round(1) }}",
]


def _shipped_templates() -> list[MessageTemplate]:
    found = [*templates.DEFAULTS.values(), DIGEST_TEMPLATE]
    for path in sorted([*ROOT.glob("mappings/*.yaml"), *ROOT.glob("examples/**/*.yaml")]):
        messages = load(path.read_bytes()).data.get("messages") or {}
        overrides = [messages.get(kind) for kind in templates.DEFAULTS]
        overrides += [v for loc in (messages.get("locales") or {}).values() for v in loc.values()]
        found += [MessageTemplate(**o) for o in overrides if o]
    return found


def _plain(template: MessageTemplate, context: dict[str, Any]) -> templates.Rendered:
    """Rendering as it was before the limits: Jinja's own immutable sandbox."""

    def env(html: bool) -> ImmutableSandboxedEnvironment:
        e = ImmutableSandboxedEnvironment(autoescape=html, undefined=StrictUndefined, trim_blocks=True)
        e.globals["link"] = templates._html_link if html else templates._text_link
        return e

    subject = env(False).from_string(template.subject).render(context)
    return templates.Rendered(
        subject=" ".join(subject.split()),
        html=templates._paragraphs(env(True).from_string(template.body).render(context)),
        text=templates._tidy_text(env(False).from_string(template.body).render(context)),
    )


def test_shipped_and_ordinary_templates_render_exactly_as_before() -> None:
    shipped = _shipped_templates()
    assert len(shipped) >= len(templates.DEFAULTS) + 3  # the defaults, the digest and the mappings'
    context = {**templates.SAMPLE_CONTEXT, "name": "Sam", "items": ["one <b>", "two"]}
    for template in [*shipped, *(MessageTemplate(subject="{{ learning.name }}", body=b) for b in FEATURES)]:
        assert templates.render(template, context) == _plain(template, context), template


# ---------------------------------------------------------------------- at decide and at send time

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)  # a Monday
ON_DATA = (  # passes `validate` (the sample person is Alex, 30 days left) and explodes on real data
    CSAT_MAPPING
    + f"""\
follow_up:
  due_in_days: 10
  remind_after_days: [3]
messages:
  recommend:
    subject: "For you"
    body: "{{% if person.first_name == 'Bomb' %}}{LOOPS}{{% endif %}}Hello {{{{ person.first_name }}}}"
  reminder:
    subject: "Reminder"
    body: "{{% if days_left < 5 %}}{LOOPS}{{% endif %}}{{{{ days_left }}}} days left"
"""
)


@pytest.fixture
def people(engine: Engine) -> Engine:
    store(
        engine,
        CS101,
        Person("M1", first_name="Mia", last_name="Boss", department="Customer Service", timezone="UTC"),
        LmsUser("moodle", 90, username="mia"),
        *agent("P1", 3.6, user_id=11, manager_id="M1", first_name="Bomb"),
        *agent("P2", 3.5, user_id=12, manager_id="M1", first_name="Pat"),
    )
    for pid, uid in (("M1", 90), ("P1", 11), ("P2", 12)):
        link(engine, pid, uid)
    return engine


def _decide(engine: Engine, now: datetime, mappings: Any) -> None:
    clock.set_now(now)
    s = settings()
    evaluate(engine, mappings, s, now, persist=Actor(mappings, s))
    follow_up(engine, mappings, s, now)


def _send(engine: Engine, sink: FakeSink, now: datetime) -> None:
    clock.set_now(now)
    deliver(engine, {"moodle": sink}, settings())


def _actions(engine: Engine) -> dict[tuple[str | None, str], tuple[str, str]]:
    return {
        (a.person_id, a.purpose): (a.state, a.last_error or "")
        for a in rows(engine, t.actions, t.actions.c.id)
        if a.kind == "message"
    }


@pytest.mark.timeout(60)
def test_a_template_that_explodes_on_one_message_stops_that_message_only(
    people: Engine, tmp_path: Path
) -> None:
    mappings = write_mapping(tmp_path, "csat", ON_DATA)
    sink = FakeSink()
    started = time.monotonic()
    _decide(people, T0, mappings)  # decide time: P1's draft explodes
    _send(people, sink, T0)
    actions = _actions(people)
    state, reason = actions[("P1", "recommend")]
    assert state == "dead"
    assert reason.startswith("not sent: mapping 'csat', recommend message: body template exceeded a limit: ")
    assert actions[("P2", "recommend")][0] == "sent"
    _decide(people, T0 + timedelta(days=3), mappings)  # P2's reminder: 7 days left, drafted
    _send(people, sink, T0 + timedelta(days=6))  # sent late: 4 days left, the template explodes now
    state, reason = _actions(people)[("P2", "reminder")]
    assert state == "dead"  # an administrator's to fix and retry, like a draft that failed
    assert reason.startswith("not sent: mapping 'csat', reminder message: body template exceeded a limit: ")
    assert "it ran more than 100,000 steps" in reason
    assert time.monotonic() - started < 40
