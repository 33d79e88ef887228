"""The simulated site's external GraphQL schema and behaviour, per Totara release — as data.

- **17.3** is built from ``external-17.3.graphql`` in this package: a byte-for-byte copy of the
  external API schema of Totara 17.3 rebuilt from its source (shared/reference/totara/17.3), not
  a hand-written summary. It has ``core_user_users`` and ``totara_job_job_assignments`` but no
  course listing and no enrolment mutation.
- **18.0** extends it with what Totara's own 18-era tests exercise: ``core_course_courses``
  (``query`` with ``pagination`` and ``filters {since_timecreated, since_timemodified, tag}``),
  ``enrol_manual_enrol_user(input: {user, course, role, timestart, timeend, suspend})`` answering
  ``{user, course, role, enrolment {id}, success, was_already_enrolled}`` and
  ``perform_goal_create_goal``. The root fields, argument names and result fields are taken from
  Totara's source; the *type names* of their inputs and results are not (no public 18 schema):
  ``core_course_courses_query`` and ``enrol_manual_enrol_user_input`` come from community code run
  against a real site, the others are our naming. The client never relies on them blindly:
  discovery checks each variable type on the site (see ``connectors.totara.graphql``).
- **19.0** adds ``totara_job_job_assignment`` (named in the 19 release notes) and moves
  ``debugMessage`` from the top of each error to ``extensions`` (19 release notes, 19 tests).

What the external endpoint does differently from a stock GraphQL server is in
:class:`Release` too: it runs only the query-depth and introspection rules (Totara's
``endpoint_type\\external::get_validation_rules()``), so an unknown root field is skipped at
execution and answers ``{"data": []}`` without an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from graphql import GraphQLSchema, build_schema

REFERENCE_17_3 = "external-17.3.graphql"

V18 = '''
"""Filters of core_course_courses (from Totara's course_courses tests)."""
input core_course_courses_filters {
  since_timecreated: core_date
  since_timemodified: core_date
  tag: String
}
input core_course_courses_query {
  pagination: core_pagination_input
  filters: core_course_courses_filters
  sort: [core_sort_input!]
}
type core_course_courses_result implements core_pageable_result {
  items: [core_course!]!
  total: Int!
  next_cursor: String!
}
input core_course_course_reference { id: core_id, idnumber: String, shortname: String }
input core_role_role_reference { id: core_id, shortname: String }
type core_role { id: core_id!, shortname: String }
input enrol_manual_enrol_user_input {
  user: core_user_user_reference!
  course: core_course_course_reference!
  role: core_role_role_reference
  timestart: core_date
  timeend: core_date
  suspend: Boolean
}
type enrol_manual_enrolment { id: core_id! }
type enrol_manual_enrol_user_result {
  user: core_user!
  course: core_course!
  role: core_role
  enrolment: enrol_manual_enrolment
  success: Boolean!
  was_already_enrolled: Boolean!
}
input perform_goal_create_goal_input { user: core_user_user_reference!, name: String!, target_date: core_date }
type perform_goal_goal { id: core_id!, name: String! }
type perform_goal_create_goal_result { goal: perform_goal_goal }

extend type Query {
  core_course_courses(query: core_course_courses_query): core_course_courses_result!
}
extend type Mutation {
  enrol_manual_enrol_user(input: enrol_manual_enrol_user_input!): enrol_manual_enrol_user_result!
  perform_goal_create_goal(input: perform_goal_create_goal_input!): perform_goal_create_goal_result!
}
'''

V19 = """
type totara_job_job_assignment_result { found: Boolean!, job_assignment: totara_job_job_assignment }
extend type Query {
  totara_job_job_assignment(target_job: totara_job_job_assignment_reference!): totara_job_job_assignment_result!
}
"""


@dataclass(frozen=True)
class Release:
    name: str  # "17.3", "18.0", "19.0"
    extensions: tuple[str, ...]  # SDL applied on top of the 17.3 reference schema
    debug_in_extensions: bool  # 19: errors[].extensions.debugMessage; 17 and 18: errors[].debugMessage
    error_categories: bool  # graphql-php 14 (17, 18) adds extensions.category; 15 (19) does not
    max_query_depth: int = 15

    @property
    def major(self) -> int:
        return int(self.name.split(".", maxsplit=1)[0])

    def schema(self) -> GraphQLSchema:
        return _schema(self.extensions)


RELEASES: dict[str, Release] = {
    "17.3": Release("17.3", (), debug_in_extensions=False, error_categories=True),
    "18.0": Release("18.0", (V18,), debug_in_extensions=False, error_categories=True),
    "19.0": Release("19.0", (V18, V19), debug_in_extensions=True, error_categories=False),
}
ALIASES = {"17": "17.3", "18": "18.0", "19": "19.0", "19.1": "19.0", "17.0": "17.3"}


def release(name: str) -> Release:
    """The release for ``17.3``, ``18``, ``19`` and the like (a major alone means its known release)."""
    key = ALIASES.get(name, name)
    if key not in RELEASES:
        major = name.split(".", maxsplit=1)[0]
        if major.isdigit() and int(major) < 17:
            raise ValueError(f"Totara {name} has no external GraphQL API (17+)")
        raise ValueError(f"unknown Totara release {name!r}; known: {', '.join(RELEASES)} (or 17, 18, 19)")
    return RELEASES[key]


def reference_sdl() -> str:
    return resources.files("connectors.totara.sim").joinpath(REFERENCE_17_3).read_text(encoding="utf-8")


@cache
def _schema(extensions: tuple[str, ...]) -> GraphQLSchema:
    return build_schema("\n".join((reference_sdl(), *extensions)))


def schema_for(name: str) -> GraphQLSchema:
    return release(name).schema()
