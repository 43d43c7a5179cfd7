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
bash scripts/setup.sh
exec .venv/bin/mahalle run "$@"
