"""Shared by the CLI and the demo."""

import sys

from testbed.record.base import ERROR, FAIL, INCONCLUSIVE, PASS, Decision

EXIT_CODES: dict[Decision, int] = {PASS: 0, FAIL: 1, INCONCLUSIVE: 3, ERROR: 4}


def say(message: str) -> None:
    """Progress and errors go to stderr, so stdout stays for results."""
    print(message, file=sys.stderr, flush=True)
