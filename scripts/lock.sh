#!/usr/bin/env bash
# Regenerates requirements.lock (the bot) and requirements-dev.lock (the bot and the development
# tools) from pyproject.toml, with every file's hash, for Python 3.11 on Linux. pip-tools runs
# from a throwaway virtualenv, never the project's.
#   bash scripts/lock.sh                          keep the pins, add what pyproject.toml gained
#   bash scripts/lock.sh --upgrade                newest versions pyproject.toml allows
#   bash scripts/lock.sh --upgrade-package numpy  just that one
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3.11}
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
    echo "The locks are made with Python 3.11: set PYTHON to a python3.11." >&2
    exit 1
}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$python" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check pip-tools
compile() {
    CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/bin/pip-compile" --quiet \
        --generate-hashes --allow-unsafe --all-build-deps --strip-extras \
        --no-emit-index-url --no-emit-find-links "$@" pyproject.toml
}
compile --output-file requirements.lock "$@"
compile --extra dev --output-file requirements-dev.lock "$@"
# The runtime lock must be the development lock less the tools: same versions in both.
"$tools/bin/python" - <<'CHECK'
import re
def pins(name):
    text = open(name, encoding="utf-8").read()
    return dict(re.findall(r"(?m)^([A-Za-z0-9_.-]+)==(\S+)", text))
runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
differ = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
if differ:
    raise SystemExit(f"the two locks pin these differently: {differ}; run again with --upgrade")
print(f"requirements.lock: {len(runtime)} packages; requirements-dev.lock: {len(dev)}")
CHECK
