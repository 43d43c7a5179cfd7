#!/usr/bin/env bash
# Set up and run every check: ruff, mypy and the test suite.
# PostgreSQL tests run when MAHALLE_TEST_DATABASE_URL is set, e.g.
#   MAHALLE_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test bash scripts/test.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest "$@"
