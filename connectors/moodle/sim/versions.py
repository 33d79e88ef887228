"""What differs between Moodle releases, as data: one spec per release the simulator can be.

Everything release-dependent in the simulator reads a field here (never ``if release == ...``),
so a new release is a new row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class VersionSpec:
    branch: str
    release: str  # core_webservice_get_site_info "release"
    version: str  # and "version"
    namespaced_exceptions: bool  # core\exception\moodle_exception, invalidrecordunknown (5.0)
    user_extra_fields: tuple[str, ...]  # fields user_get_user_details adds in this release
    site_features: tuple[str, ...]  # extra advancedfeatures site info reports
    enrolled_users_options: frozenset[str]  # options core_enrol_get_enrolled_users knows
    cantsendtouser: bool  # send_instant_messages answers carry "cantsendtouser" on failure
    names_need_viewfullnames: bool  # firstname/lastname only with moodle/site:viewfullnames (seen on 4.5.0)
    # enrol_manual_enrol_users on a course without a manual method is a PHP 8 fatal error, HTTP 500
    # (wsnoinstance thrown with its parameters as the link; seen on 4.1.11, fixed by 4.5)
    noinstance_is_fatal: bool = False


_ENROLLED_OPTIONS = frozenset(
    {
        "withcapability",
        "groupid",
        "onlyactive",
        "userfields",
        "limitfrom",
        "limitnumber",
        "sortby",
        "sortdirection",
    }
)


def _spec(branch: str, release: str, version: str, *, new: bool, onlysuspended: bool = True) -> VersionSpec:
    return VersionSpec(
        branch=branch,
        release=release,
        version=version,
        namespaced_exceptions=new,
        user_extra_fields=("trackforums",) if new else (),
        site_features=("enablecompetencies",) if new else (),
        enrolled_users_options=_ENROLLED_OPTIONS | ({"onlysuspended"} if onlysuspended else set()),
        cantsendtouser=new,
        names_need_viewfullnames=not new,
    )


SPECS: dict[str, VersionSpec] = {
    "3.11": _spec("3.11", "3.11.18 (Build: 20231211)", "2021051718.00", new=False),
    "4.1": replace(
        _spec("4.1", "4.1.14 (Build: 20241007)", "2022112814.00", new=False), noinstance_is_fatal=True
    ),
    "4.4": _spec("4.4", "4.4.3 (Build: 20240812)", "2024042203.00", new=False),
    "4.5": _spec("4.5", "4.5.1 (Build: 20241209)", "2024100701.00", new=False),
    "5.0": _spec("5.0", "5.0.6+ (Build: 20260403)", "2025041406.11", new=True),
    "5.1": _spec("5.1", "5.1.1 (Build: 20251215)", "2025100601.00", new=True),
}
DEFAULT = "5.0"
SUPPORTED = ("4.1", "4.5", "5.0")  # the releases the tests run every enforcement check at


def spec(release: str) -> VersionSpec:
    try:
        return SPECS[release]
    except KeyError:
        raise ValueError(f"unknown Moodle release {release!r}; known: {', '.join(SPECS)}") from None
