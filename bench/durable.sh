#!/usr/bin/env bash
# Durable-push benchmarks against Mosquitto (which keeps queues in memory), per store back-end.
#
# usage: bench/durable.sh [REPS]     env: STORES="sqlite redis memory"  PORT=18850  SCENS_OFF=...
#   a store name may also be any bench/NAME.toml (e.g. STORES=no-tracking)
#   offline       100 persistent sessions x 100 QoS 1 messages: publish phase and drain
#   offline1000   the same with 1000 sessions
#   fanin_q1p     QoS 1 fan-in (4 publishers) to a subscriber with a persistent session
#
# The shared load generator has no persistent fan-in subscriber and no 1000-session offline
# scenario, so this script runs a patched copy of ../shared/bench in $WORK_COPY (nothing of it is
# committed): fan-in subscribers keep their session when ZB_PERSIST is set, and `offline1000` is
# added to the scenario list.  Redis runs on 127.0.0.1:16379 with appendfsync always.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
REPS="${1:-3}"
PORT="${PORT:-18850}"
SHARED="${SHARED_BENCH:-../shared/bench}"
WORK_COPY="${WORK_COPY:-/tmp/zbench-durable}"
read -r -a STORES <<<"${STORES:-sqlite redis memory}"

rm -rf "$WORK_COPY" && cp -r "$SHARED" "$WORK_COPY"
sed -i 's|uint32_t expiry = 0; int clean = 1;|uint32_t expiry = getenv("ZB_PERSIST") ? 3600 : 0; int clean = !getenv("ZB_PERSIST");|' \
  "$WORK_COPY/loadgen/mqttload.c"
# ... and reconnect under the same client id in every run, so a run resumes the session the previous
# run left (a device coming back) instead of leaving an orphan session subscribed to bench/# that
# queues every later run's messages until its quota is full.
sed -i 's|^\(      \)snprintf(cid, sizeof cid, "zb%06xs%d", tag, i);|\1if (getenv("ZB_PERSIST")) snprintf(cid, sizeof cid, "zbpersist%d", i); else snprintf(cid, sizeof cid, "zb%06xs%d", tag, i);|' \
  "$WORK_COPY/loadgen/mqttload.c"
[ "$(grep -c 'getenv("ZB_PERSIST")' "$WORK_COPY/loadgen/mqttload.c")" = 2 ] || { echo "could not patch mqttload.c" >&2; exit 1; }
sed -i 's|^\(    offline)     echo "--scenario offline --subs 100 --msgs 100 --user bench" ;;\)$|\1\n    offline1000) echo "--scenario offline --subs 1000 --msgs 100 --user bench --timeout 90" ;;|' \
  "$WORK_COPY/lib.sh"
grep -q offline1000 "$WORK_COPY/lib.sh" || { echo "could not patch lib.sh" >&2; exit 1; }
rm -f "$WORK_COPY/loadgen/mqttload"
make -s -C "$WORK_COPY/loadgen" >/dev/null 2>&1

REDIS_DIR=$(mktemp -d)
redis-server --bind 127.0.0.1 --port 16379 --dir "$REDIS_DIR" --save "" --appendonly yes \
  --appendfsync always --daemonize yes --logfile "$REDIS_DIR/redis.log" >/dev/null
trap 'redis-cli -p 16379 shutdown nosave >/dev/null 2>&1 || true; rm -rf "$REDIS_DIR"' EXIT

for store in "${STORES[@]}"; do
  case "$store" in
    sqlite) args="" ;;  # the default: data/zanzara.db under a fresh directory, durability fsync
    redis) args="-c $ROOT/bench/redis.toml" ;;
    memory) args="-c $ROOT/bench/memory.toml" ;;
    *) [ -f "bench/$store.toml" ] || { echo "unknown store $store (no bench/$store.toml)" >&2; exit 1; }
       args="-c $ROOT/bench/$store.toml" ;;
  esac
  DATA=$(mktemp -d)
  redis-cli -p 16379 flushall >/dev/null
  echo "== $store: offline, offline1000" >&2
  (cd "$DATA" && SCENS="offline offline1000" "$WORK_COPY/compare.sh" \
    "$ROOT/.venv/bin/zanzara --host 127.0.0.1 --port $PORT --log-level warning $args" "$PORT" "$REPS") \
    | sed "s/^/[$store] /"
  redis-cli -p 16379 flushall >/dev/null
  rm -rf "$DATA"; DATA=$(mktemp -d)
  echo "== $store: fanin_q1 to a persistent session" >&2
  (cd "$DATA" && ZB_PERSIST=1 SCENS="fanin_q1" "$WORK_COPY/compare.sh" \
    "$ROOT/.venv/bin/zanzara --host 127.0.0.1 --port $PORT --log-level warning $args" "$PORT" "$REPS") \
    | sed "s/^/[$store persistent] /"
  rm -rf "$DATA"
done
