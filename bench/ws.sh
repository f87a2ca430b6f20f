#!/usr/bin/env bash
# MQTT over WebSocket next to MQTT over TCP, zanzara and Mosquitto, in one run (see bench/README.md).
#
# usage: bench/ws.sh [REPS]        env: SCENS="fanin_q0 fanin_q1 fanout"  ZPORT=18860 MPORT=18865
#
# Four targets, each scenario run against all of them in turn (alternating, REPS times):
#   zanzara:tcp  zanzara:ws  mosquitto:tcp  mosquitto:ws
# Brokers are pinned to CPU 0 and the load generator to CPU 1 (../shared/bench/lib.sh).  The load
# generator is a copy of ../shared/bench/loadgen/mqttload.c in $WORK_COPY with bench/wsext.c
# spliced in (WebSocket handshake, masked binary frames); nothing of the shared bench is committed
# here.  With ZB_WS unset the copy is the shared TCP load generator, byte for byte the same traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
REPS="${1:-3}"
ZPORT="${ZPORT:-18860}"; ZWS=$((ZPORT + 1))
MPORT="${MPORT:-18865}"; MWS=$((MPORT + 1))
SHARED="${SHARED_BENCH:-../shared/bench}"
WORK_COPY="${WORK_COPY:-/tmp/zbench-ws}"
read -r -a SCENS <<<"${SCENS:-fanin_q0 fanin_q1 fanout}"
unset ZB_WS  # set per run below, for the WebSocket targets only

rm -rf "$WORK_COPY" && cp -r "$SHARED" "$WORK_COPY"
SRC="$WORK_COPY/loadgen/mqttload.c"
cp bench/wsext.c "$WORK_COPY/loadgen/wsext.c"
sed -i \
  -e 's|^  uint64_t recv;$|  uint64_t recv;\n  int ws_state; size_t ws_framed; buf_t ws_in; /* bench/wsext.c */|' \
  -e 's|^static void conn_flush(conn_t \*c) {$|static void conn_flush_raw(conn_t *c) {|' \
  -e 's|^static size_t parse_stream(conn_t \*c, const uint8_t \*d, size_t n) {$|static size_t mqtt_parse_stream(conn_t *c, const uint8_t *d, size_t n) {|' \
  -e 's|^static void conn_readable(conn_t \*c) {$|#include "wsext.c"\n\nstatic void conn_readable(conn_t *c) {|' \
  -e 's|^    mq_connect(c);$|    if (ws_path()) ws_handshake(c); else mq_connect(c);|' \
  "$SRC"
for marker in 'buf_t ws_in;' 'conn_flush_raw(conn_t' 'mqtt_parse_stream(conn_t' '#include "wsext.c"' 'ws_handshake(c); else'; do
  grep -qF "$marker" "$SRC" || { echo "could not patch mqttload.c ($marker): has the shared bench changed?" >&2; exit 1; }
done
rm -f "$WORK_COPY/loadgen/mqttload"
# The shared source's own compiler warnings go to the log; a failed build shows it.
make -s -C "$WORK_COPY/loadgen" mqttload >"$WORK_COPY/build.log" 2>&1 || { cat "$WORK_COPY/build.log" >&2; exit 1; }

# shellcheck source=/dev/null
source "$WORK_COPY/lib.sh"
init_pids
trap stop_all EXIT
trap "exit 130" INT TERM
command -v mosquitto >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto; } >&2
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
for p in "$ZPORT" "$ZWS" "$MPORT" "$MWS"; do port_free "$p" || { echo "port $p is already in use" >&2; exit 1; }; done

MCONF="$WORK/mosquitto-ws-$MPORT.conf"
# Debian's Mosquitto has libwebsockets built in, without IPv6: socket_domain ipv4 or it cannot bind.
cat >"$MCONF" <<EOF
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type error
log_type warning
listener $MPORT 127.0.0.1
listener $MWS 127.0.0.1
protocol websockets
socket_domain ipv4
EOF
DATA=$(mktemp -d)
ZPID=$(cd "$DATA" && start_bg zanzara-ws "$ROOT/.venv/bin/zanzara" -c "$ROOT/bench/core.toml" \
  --host 127.0.0.1 --port "$ZPORT" --ws-port "$ZWS" --log-level warning)
MPID=$(start_bg mosquitto-ws mosquitto -c "$MCONF")
for p in "$ZPORT" "$ZWS" "$MPORT" "$MWS"; do wait_port "$p" 30; done
echo "zanzara pid $ZPID :$ZPORT ws :$ZWS, mosquitto pid $MPID :$MPORT ws :$MWS" >&2

mkdir -p "$WORK"
OUT="$WORK/ws-$(date +%Y%m%d-%H%M%S).jsonl"
for rep in $(seq "$REPS"); do
  for scen in "${SCENS[@]}"; do
    for target in zanzara:tcp zanzara:ws mosquitto:tcp mosquitto:ws; do
      case "$target" in
        zanzara:tcp) port=$ZPORT pid=$ZPID ws= ;;
        zanzara:ws) port=$ZWS pid=$ZPID ws=/mqtt ;;
        mosquitto:tcp) port=$MPORT pid=$MPID ws= ;;
        mosquitto:ws) port=$MWS pid=$MPID ws=/mqtt ;;
      esac
      kill -0 "$pid" 2>/dev/null || { echo "{\"label\":\"$target:$scen\",\"error\":\"broker died\"}" >>"$OUT"; continue; }
      # The shared fan-out (2,000 msgs) lasts ~0.2 s here: 10,000 gives a figure above the noise.
      extra=(); [ "$scen" = fanout ] && extra=(--msgs 10000)
      if [ -n "$ws" ]; then line=$(ZB_WS="$ws" run_one "$target" "$port" "$pid" "$scen" "${extra[@]}")
      else line=$(run_one "$target" "$port" "$pid" "$scen" "${extra[@]}"); fi
      echo "$line" >>"$OUT"
      echo "rep $rep $target $scen: $(echo "$line" | head -c 200)" >&2
      sleep 0.5
    done
  done
done
stop_all
rm -rf "$DATA"
echo "raw results: $OUT" >&2
python3 "$ROOT/bench/ws_summary.py" "$OUT"
