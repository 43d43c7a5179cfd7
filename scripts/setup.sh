#!/usr/bin/env bash
# Creates .venv (Python >= 3.11) and installs Mahalle into it from a lock file: every package
# pinned to one version and checked against its hashes, so every machine runs the same code.
#   bash scripts/setup.sh           the bot and the development tools (requirements-dev.lock)
#   bash scripts/setup.sh runtime   the bot alone (requirements.lock), as scripts/run.sh does
# Safe to run again: it installs only when that lock file or pyproject.toml changed since.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-dev}" in
    dev) lock=requirements-dev.lock ;;
    runtime) lock=requirements.lock ;;
    *)
        echo "usage: bash scripts/setup.sh [dev|runtime]" >&2
        exit 2
        ;;
esac

pick_python() {
    # The locks are made for Python 3.11; a newer one works as long as its wheels exist.
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "Mahalle needs Python 3.11 or newer; install it (e.g. apt-get install python3) and retry." >&2
    return 1
}

if [ ! -x .venv/bin/python ]; then
    "$(pick_python)" -m venv .venv
fi
# One stamp per lock, holding what was installed from: the lock's and pyproject.toml's hash.
stamp=".venv/.installed-$lock"
wanted=$(.venv/bin/python -c 'import hashlib, sys
print(hashlib.sha256(b"".join(open(name, "rb").read() for name in sys.argv[1:])).hexdigest())' \
    "$lock" pyproject.toml)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing from $lock into .venv (once; a minute or two)..." >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r "$lock"
    # Mahalle itself, editable, built with the setuptools the lock pinned.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
        --no-build-isolation -e .
    echo "$wanted" >"$stamp"
fi
