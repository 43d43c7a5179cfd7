#!/usr/bin/env bash
# Set up and run every check: ruff, mypy and the test suite.
# PostgreSQL tests run when MAHALLE_TEST_DATABASE_URL is set, e.g.
#   MAHALLE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test bash scripts/test.sh
# Without arguments a second pass follows: the chat-level tests that matter most to a deployment
# of several bots, with the tests' bot the second of two (MAHALLE_TEST_BOTS=2, tests/fakebot.py),
# on SQLite and Telegram only (a few minutes). Arguments are pytest's, for the first pass alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [ "$#" -gt 0 ]; then
    exec .venv/bin/pytest "$@"
fi
.venv/bin/pytest
two_bots=(
    tests/test_report_flow.py # a resident's journey
    tests/test_agency.py      # an agency's work on a case
    tests/test_desk.py        # the coordinators' desk, deadlines and digest
    tests/test_counties.py    # each county's own places, agencies and figures
    tests/test_broadcast.py   # broadcasts, sent by the bot whose county launched them
)
selection="not postgresql and not bale"
echo "Two-bot pass: MAHALLE_TEST_BOTS=2 pytest -k '$selection' ${two_bots[*]}"
MAHALLE_TEST_BOTS=2 exec .venv/bin/pytest -q -k "$selection" "${two_bots[@]}"
