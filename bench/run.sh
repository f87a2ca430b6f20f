#!/usr/bin/env bash
# Compare zanzara with Mosquitto using ../shared/bench (see bench/README.md).
# usage: bench/run.sh [REPS]        env: SCENS="fanin_q0 fanout" PORT=18850
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED_BENCH:-../shared/bench}"
[ -x "$SHARED/compare.sh" ] || { echo "missing $SHARED/compare.sh" >&2; exit 1; }
PORT="${PORT:-18850}"
exec "$SHARED/compare.sh" "$PWD/.venv/bin/zanzara --host 127.0.0.1 --port $PORT --log-level warning" "$PORT" "${1:-3}"
