"""Email over SMTP: a delivery channel for managers or learners outside the LMS."""
