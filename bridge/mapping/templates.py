"""Message templates: Jinja2 in a sandbox, HTML auto-escaped.

Administrators write templates in the mapping files; HR data (a learner named
``{{ 7*7 }}`` or ``<script>``) is only ever a value in the context, so it is escaped, never run.
Templates are plain text with blank lines between paragraphs; the HTML version wraps the
paragraphs and turns ``link(url, text)`` into an anchor, the text version spells the URL out.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingType
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, get_args

from jinja2 import StrictUndefined, Template, TemplateError
from markupsafe import Markup, escape

from bridge.errors import BridgeError, Remedy
from bridge.mapping.model import Mapping, MessageKind, MessageTemplate
from bridge.mapping.sandbox import BoundedEnvironment, TemplateLimit, bounded

DEFAULTS: dict[str, MessageTemplate] = {
    "recommend": MessageTemplate(
        subject="Learning picked for you: {{ learning.name }}",
        body=(
            "Hello {{ person.first_name }},\n\n"
            "Why this is coming to you: {{ reason }}.\n\n"
            "{{ link(learning.url, learning.name) }} is picked to help with exactly that.\n\n"
            "{% if due_date %}Please complete it by {{ due_date }}.{% endif %}"
        ),
    ),
    "reminder": MessageTemplate(
        subject="Reminder: {{ learning.name }}",
        body=(
            "Hello {{ person.first_name }},\n\n"
            "A reminder that {{ link(learning.url, learning.name) }} is waiting for you.\n\n"
            "{% if overdue %}It was due on {{ due_date }} and is now overdue: please finish it this week."
            "{% elif due_date %}It is due by {{ due_date }} ({{ days_left }} day{{ '' if days_left == 1 else 's' }} left)."
            "{% endif %}"
        ),
    ),
    "escalation": MessageTemplate(
        # Subject and body say the same: who, which item, and whether it is overdue.
        subject=(
            "{{ person.full_name }} has not completed {{ learning.name }}"
            "{% if overdue %}: {{ days_overdue }} day{{ '' if days_overdue == 1 else 's' }} overdue"
            "{% else %} yet{% endif %}"
        ),
        body=(
            "Hello {{ manager.first_name }},\n\n"
            "{{ person.full_name }} was recommended {{ link(learning.url, learning.name) }} "
            "on {{ opened_on }} and has not completed it yet. "
            "{% if overdue %}It was due on {{ due_date }} and is {{ days_overdue }} "
            "day{{ '' if days_overdue == 1 else 's' }} overdue."
            "{% elif due_date %}It is due by {{ due_date }}.{% endif %}\n\n"
            "Why: {{ reason }}.\n\n"
            "A short conversation about it usually helps."
        ),
    ),
    "reinforcement": MessageTemplate(
        subject="Putting {{ learning.name }} into practice",
        body=(
            "Hello {{ person.first_name }},\n\n"
            "You completed {{ link(learning.url, learning.name) }} on {{ completed_on }}. "
            "{% if step_number == 1 %}Take two minutes today to recall one thing you learned and use it at work."
            "{% elif step_number == 2 %}Which idea from it have you tried since? Try it once more this week."
            "{% elif step_number < steps %}Look back at one part you found hard and practise it on a real task."
            "{% else %}Last nudge: share one thing you now do differently with a colleague.{% endif %}"
        ),
    ),
    "observe": MessageTemplate(
        subject="{{ person.full_name }} completed {{ learning.name }}",
        body=(
            "Hello {{ manager.first_name }},\n\n"
            "{{ person.full_name }} completed {{ link(learning.url, learning.name) }} on {{ completed_on }}.\n\n"
            "Over the next weeks, watch for the new behaviour and give feedback."
        ),
    ),
}

SAMPLE_CONTEXT: dict[str, Any] = {
    "person": {"first_name": "Alex", "last_name": "Sample", "full_name": "Alex Sample"},
    "manager": {"first_name": "Sam", "last_name": "Manager", "full_name": "Sam Manager"},
    "learning": {
        "name": "Sample course",
        "url": "https://lms.example/course/view.php?id=1",
        "kind": "course",
        "shortname": "S-1",
    },
    "mapping": {"id": "sample", "title": "Sample mapping"},
    "reason": "CSAT 3.6 is below the target 4.2 in 2026-10",
    "due_date": "2026-12-31",
    "days_left": 30,
    "overdue": False,
    "days_overdue": 0,
    "opened_on": "2026-11-01",
    "days_since_recommended": 30,
    "completed_on": "2026-11-15",
    "today": "2026-12-01",
    "step": 7,
    "step_number": 2,
    "steps": 5,
}


def _html_link(url: str | None, text: str | None = None) -> Markup:
    if not url:
        return escape(text or "")
    return Markup('<a href="{0}">{1}</a>').format(url, text or url)


def _text_link(url: str | None, text: str | None = None) -> str:
    if not url:
        return text or ""
    return f"{text} ({url})" if text else url


_html = BoundedEnvironment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
_html.globals["link"] = _html_link
_text = BoundedEnvironment(autoescape=False, undefined=StrictUndefined, trim_blocks=True)
_text.globals["link"] = _text_link


class TemplateFailed(BridgeError):
    """A message template could not be rendered for this message (an error, or past a limit)."""

    remedy = Remedy.SKIP_ITEM


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class TemplateProblem:
    path: tuple[str | int, ...]
    field: str
    message: str


def own_template(mapping: Mapping, kind: MessageKind, locale: str | None) -> MessageTemplate | None:
    """The mapping's own template for a kind in the locale (or its language), or None."""
    messages = mapping.messages
    for candidate in _locale_chain(locale):
        override = messages.locales.get(candidate, {}).get(kind)
        if override is not None:
            return override
    own: MessageTemplate | None = getattr(messages, kind)
    return own


def template_for(mapping: Mapping | None, kind: MessageKind, locale: str | None) -> MessageTemplate:
    """The mapping's template for a kind in the locale, falling back to its language, then default."""
    own = own_template(mapping, kind, locale) if mapping is not None else None
    return own if own is not None else DEFAULTS[kind]


def _locale_chain(locale: str | None) -> list[str]:
    if not locale:
        return []
    normalised = locale.replace("-", "_")
    language = normalised.split("_", 1)[0]
    return [normalised, language] if language != normalised else [normalised]


def _paragraphs(html: str) -> str:
    blocks = [b.strip() for b in html.replace("\r\n", "\n").split("\n\n")]
    return "".join(f"<p>{b.replace(chr(10), '<br>')}</p>" for b in blocks if b)


def _tidy_text(text: str) -> str:
    blocks = [b.strip() for b in text.replace("\r\n", "\n").split("\n\n")]
    return "\n\n".join(b for b in blocks if b)


@lru_cache(maxsize=1024)
def _compiled(html: bool, source: str) -> Template:
    """Templates are compiled once per text, not once per message."""
    return (_html if html else _text).from_string(source)


def _render(html: bool, source: str, context: MappingType[str, Any]) -> str:
    """One template rendered within the sandbox's limits (each render has its own budget)."""
    with bounded():
        return _compiled(html, source).render(context)


def _describe(exc: Exception) -> str:
    """What went wrong, with the template line: ``it ran ... (template line 3)``."""
    if isinstance(exc, TemplateError):
        text = exc.message or type(exc).__name__
    else:  # 1/0, 'a' + 1, a number too long to print: the template's doing, not the bridge's
        text = f"{type(exc).__name__}: {exc}"
    lineno = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:  # Jinja rewrites the traceback so its frames carry template lines
        if tb.tb_frame.f_code.co_filename == "<template>":
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f"{text} (template line {lineno})" if lineno else text


def render(template: MessageTemplate, context: MappingType[str, Any]) -> Rendered:
    """The message in its three forms; raises TemplateFailed naming the part that failed."""
    parts: dict[str, str] = {}
    with bounded():
        for name, html, source in (
            ("subject", False, template.subject),
            ("html", True, template.body),
            ("text", False, template.body),
        ):
            try:
                parts[name] = _render(html, source, context)
            except Exception as exc:  # any failure is this message's, in one line
                kind = "subject" if name == "subject" else "body"
                problem = "exceeded a limit" if isinstance(exc, TemplateLimit) else "failed"
                raise TemplateFailed(f"{kind} template {problem}: {_describe(exc)}") from None
    return Rendered(
        subject=" ".join(parts["subject"].split()),
        html=_paragraphs(parts["html"]),
        text=_tidy_text(parts["text"]),
    )


def check(mapping: Mapping) -> list[TemplateProblem]:
    """Compile and trial-render every template of a mapping with a sample context."""
    problems: list[TemplateProblem] = []
    found: list[tuple[tuple[str | int, ...], MessageTemplate]] = []
    for kind in get_args(MessageKind):
        own = getattr(mapping.messages, kind)
        if own is not None:
            found.append((("messages", kind), own))
    for locale, overrides in mapping.messages.locales.items():
        for kind, template in overrides.items():
            found.append((("messages", "locales", locale, kind), template))
    spent = False  # the mapping's templates share one budget; once it is spent, only compile
    with bounded():
        for path, template in found:
            for part in ("subject", "body"):
                source = getattr(template, part)
                try:
                    _compiled(True, source) if spent else _render(True, source, SAMPLE_CONTEXT)
                except Exception as exc:  # every failure: one line naming the field
                    spent = spent or isinstance(exc, TemplateLimit)
                    message = (
                        f"template of mapping '{mapping.id}' exceeded a limit: {_describe(exc)}"
                        "; a message template must stay small"
                        if isinstance(exc, TemplateLimit)
                        else f"template error: {_describe(exc)}"
                    )
                    field = ".".join(map(str, (*path, part)))
                    problems.append(TemplateProblem((*path, part), field, message))
    return problems
