"""lmsbridge core: records, rules and state; no LMS or HRIS wire format."""

__version__ = "0.1.0"
