"""``python -m bridge`` is the ``lmsbridge`` command."""

from bridge.cli import main

main()
