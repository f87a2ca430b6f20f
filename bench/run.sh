#!/usr/bin/env bash
# Compare zanzara with Mosquitto using ../shared/bench (see bench/README.md).
# usage: bench/run.sh [REPS]        env: SCENS="fanin_q0 fanout" PORT=18850
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED_BENCH:-../shared/bench}"
[ -x "$SHARED/compare.sh" ] || { echo "missing $SHARED/compare.sh" >&2; exit 1; }
PORT="${PORT:-18850}"
# ZANZARA_ARGS adds flags, e.g. ZANZARA_ARGS="-c bench/no-tracking.toml"
exec "$SHARED/compare.sh" "$PWD/.venv/bin/zanzara --host 127.0.0.1 --port $PORT --log-level warning ${ZANZARA_ARGS:-}" "$PORT" "${1:-3}"
