"""A faithful Moodle web-service simulator, for the demo, contract tests and benchmarks."""
