"""The simulated site's external GraphQL schema, per Totara release.

Only the operations lmsbridge uses, with Totara's names: ``totara_webapi_status`` and
``core_user_users`` (17+), ``core_course_courses``, ``totara_job_job_assignments`` and
``enrol_manual_enrol_user`` (18+). Paged queries take a ``query`` input with
``core_pagination_input {cursor, limit, page}`` and answer ``{items, total, next_cursor}``.
"""

from __future__ import annotations

from graphql import GraphQLSchema, build_schema

COMMON = """
scalar core_id
scalar param_integer
scalar core_date

input core_pagination_input { cursor: String, limit: param_integer, page: param_integer }
input core_sort_input { column: String!, direction: String }
input core_user_user_reference { id: core_id, idnumber: String, email: String, username: String }
input core_course_course_reference { id: core_id, idnumber: String, shortname: String }

type totara_webapi_status { status: String!, timestamp: String }

type core_user {
  id: core_id!
  username: String
  idnumber: String
  email: String
  firstname: String
  lastname: String
  fullname: String
  suspended: Boolean
}
input core_user_users_query { pagination: core_pagination_input, sort: [core_sort_input!] }
type core_user_users_result { items: [core_user!]!, total: Int!, next_cursor: String! }
"""

V18 = """
type core_course {
  id: core_id!
  shortname: String
  fullname: String
  idnumber: String
  url: String
}
input core_course_courses_query { pagination: core_pagination_input }
type core_course_courses_result { items: [core_course!]!, total: Int!, next_cursor: String! }

type totara_job_job_assignment {
  id: core_id!
  idnumber: String
  fullname: String
  managerjaid: core_id
  user: core_user
}
input totara_job_job_assignments_query { pagination: core_pagination_input }
type totara_job_job_assignments_result { items: [totara_job_job_assignment!]!, total: Int!, next_cursor: String! }

input enrol_manual_role_reference { id: core_id, shortname: String }
input enrol_manual_enrol_user_input {
  user: core_user_user_reference!
  course: core_course_course_reference!
  role: enrol_manual_role_reference
  timestart: core_date
  timeend: core_date
  suspend: Boolean
}
type enrol_manual_enrolment { id: core_id! }
type enrol_manual_role { id: core_id! }
type enrol_manual_enrol_user_result {
  user: core_user
  course: core_course
  role: enrol_manual_role
  enrolment: enrol_manual_enrolment
  success: Boolean!
  was_already_enrolled: Boolean!
}
"""

QUERIES_17 = """
  totara_webapi_status: totara_webapi_status!
  core_user_users(query: core_user_users_query): core_user_users_result!
"""
QUERIES_18 = """
  core_course_courses(query: core_course_courses_query): core_course_courses_result!
  totara_job_job_assignments(query: totara_job_job_assignments_query): totara_job_job_assignments_result!
"""
MUTATIONS_17 = """
  core_user_delete_user(target_user: core_user_user_reference!): Boolean
"""
MUTATIONS_18 = """
  enrol_manual_enrol_user(input: enrol_manual_enrol_user_input!): enrol_manual_enrol_user_result!
"""

RELEASES = ("17.0", "18.0", "19.0")


def schema_for(release: str) -> GraphQLSchema:
    major = int(release.split(".", maxsplit=1)[0])
    if major < 17:
        raise ValueError(f"Totara {release} has no external GraphQL API (17+)")
    modern = major >= 18
    sdl = COMMON + (V18 if modern else "")
    sdl += "type Query {" + QUERIES_17 + (QUERIES_18 if modern else "") + "}\n"
    sdl += "type Mutation {" + MUTATIONS_17 + (MUTATIONS_18 if modern else "") + "}\n"
    return build_schema(sdl)
