#!/usr/bin/env bash
# Set up and run the bot on the embedded SQLite database.
#   MAHALLE_BOT_TOKEN=<token from @BotFather> bash scripts/run.sh [--config FILE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${MAHALLE_BOT_TOKEN:-}" ]; then
    cat >&2 <<'MSG'
MAHALLE_BOT_TOKEN is not set.
Get a token: open Telegram, talk to @BotFather, send /newbot and follow the questions
(on Bale: talk to @botfather there). Then run:
    export MAHALLE_BOT_TOKEN='<the token it gave you>'
    bash scripts/run.sh
MSG
    exit 2
fi
# What bot/config.py refuses (a placeholder, a malformed token), checked before installing
# anything: a pasted placeholder is told at once, not after the first install.
token=$(printf '%s' "$MAHALLE_BOT_TOKEN" | tr -d '[:space:]')
lowered=$(printf '%s' "$token" | tr '[:upper:]' '[:lower:]')
if [[ "$lowered" =~ your|token|changeme|example|xxxx|123456:abc ]]; then
    cat >&2 <<'MSG'
MAHALLE_BOT_TOKEN holds a placeholder from an example, not a bot token. Put the token
@BotFather (or Bale's @botfather) gave you in it:
    export MAHALLE_BOT_TOKEN='<the token it gave you>'
    bash scripts/run.sh
MSG
    exit 2
fi
if ! [[ "$token" =~ ^[0-9]{5,}:[A-Za-z0-9_-]{20,}$ ]]; then
    cat >&2 <<'MSG'
MAHALLE_BOT_TOKEN does not look like a real bot token: expected '<digits>:<at least 20 letters,
digits, _ or ->', as @BotFather (or Bale's @botfather) gives it. Copy it again and run:
    export MAHALLE_BOT_TOKEN='<the token it gave you>'
    bash scripts/run.sh
MSG
    exit 2
fi
# The bot alone: the test tools come with scripts/test.sh.
bash scripts/setup.sh runtime
exec .venv/bin/mahalle run "$@"
