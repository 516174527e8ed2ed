"""CI runs the test command the README gives, word for word."""

from __future__ import annotations

import re

from conftest import REPO


def test_ci_runs_the_readmes_test_command():
    readme = (REPO / "README.md").read_text()
    (command,) = [line.split("#")[0].strip() for line in readme.splitlines()
                  if re.match(r"bash scripts/setup.sh && \S*python -m pytest", line)]
    ci = [line for line in (REPO / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [command]
    assert "--durations=15" in command.split()  # the slowest tests are printed on every run
