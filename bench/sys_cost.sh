#!/usr/bin/env bash
# What the admin API and $SYS cost the broker's hot path: fan-in QoS 0 and fan-out with both on
# (sys_interval = 10, the default, and the admin API on a port) versus both off (sys_interval = 0,
# --admin-port 0).  See bench/README.md.
#
# usage: bench/sys_cost.sh [REPS]        env: SCENS="fanin_q0 fanout"  PORT=18870  ADMIN_PORT=18871
#
# Each round runs every scenario against "on" then "off" (the order swapped every other round),
# the broker pinned to CPU 0 and the shared load generator to CPU 1 (../shared/bench/lib.sh).
# The runs are made longer than the shared scenarios' (MSGS_FANIN, MSGS_FANOUT) so that each one
# spans at least one $SYS update (every 10 s).  Prints the median and the range of each.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS="${1:-3}"
PORT="${PORT:-18870}"
ADMIN_PORT="${ADMIN_PORT:-18871}"
SHARED="${SHARED_BENCH:-../shared/bench}"
read -r -a SCENS <<<"${SCENS:-fanin_q0 fanout}"
MSGS_FANIN="${MSGS_FANIN:-1200000}"  # ~10 s at 120,000 msgs/s
MSGS_FANOUT="${MSGS_FANOUT:-80000}"  # 8,000,000 deliveries, ~9 s
OUT="${OUT:-/tmp/zbench-sys/results.jsonl}"

# shellcheck source=/dev/null
source "$SHARED/lib.sh"
build_loadgen
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
init_pids
trap stop_all EXIT

args_of() {
  case "$1" in
    fanin_q0) echo "--scenario fanin --qos 0 --pubs 4 --size 64 --msgs $MSGS_FANIN --timeout 120" ;;
    fanout) echo "--scenario fanout --qos 0 --subs 100 --size 64 --msgs $MSGS_FANOUT --timeout 120" ;;
    *) scenario_args "$1" ;;
  esac
}

run_one() { # MODE SCENARIO ROUND
  local mode="$1" scen="$2" round="$3" pid admin sys
  if [ "$mode" = on ]; then admin="$ADMIN_PORT"; sys=10; else admin=0; sys=0; fi
  port_free "$PORT" || { echo "port $PORT is taken" >&2; exit 1; }
  pid="$(start_bg "zanzara-$mode" env ZANZARA_SYS_INTERVAL="$sys" .venv/bin/zanzara -c bench/core.toml \
    --host 127.0.0.1 --port "$PORT" --ws-port 0 --admin-port "$admin")"
  wait_port "$PORT"
  local line
  # shellcheck disable=SC2046
  line="$($PIN_LOAD "$LOADGEN" --port "$PORT" $(args_of "$scen") --label "$mode")"
  echo "{\"mode\": \"$mode\", \"scenario\": \"$scen\", \"round\": $round, \"result\": $line}" >>"$OUT"
  stop_pid "$pid"
  echo "$scen $mode round $round: $line" >&2
}

for round in $(seq "$REPS"); do
  for scen in "${SCENS[@]}"; do
    if [ $((round % 2)) = 1 ]; then order="on off"; else order="off on"; fi
    for mode in $order; do run_one "$mode" "$scen" "$round"; done
  done
done

.venv/bin/python - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
key = {"fanin_q0": "msgs_per_s", "fanout": "deliveries_per_s"}
for scen in dict.fromkeys(r["scenario"] for r in rows):
    figures = {}
    for mode in ("on", "off"):
        vals = [r["result"].get(key.get(scen, "msgs_per_s"), 0) for r in rows if r["scenario"] == scen and r["mode"] == mode]
        figures[mode] = statistics.median(vals)
        print(f"{scen:<9} {mode:<3} median {figures[mode]:>10,.0f}  range {min(vals):,.0f} - {max(vals):,.0f}  ({len(vals)} runs)")
    print(f"{scen:<9} on/off {figures['on'] / figures['off']:.3f}")
EOF
