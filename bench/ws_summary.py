#!/usr/bin/env python3
"""Summarize bench/ws.sh results (labels "BROKER:TRANSPORT:SCENARIO") as a markdown table of ratios.

usage: python3 bench/ws_summary.py FILE.jsonl
Medians of the runs; ratios of medians (throughput, so higher is better for the numerator).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

METRIC = {
    "fanin_q0": "msgs_per_s",
    "fanin_q1": "msgs_per_s",
    "fanin_q2": "msgs_per_s",
    "fanout": "deliveries_per_s",
}
TITLE = {
    "fanin_q0": "fan-in QoS 0 (4 pubs -> 1 sub), msgs/s",
    "fanin_q1": "fan-in QoS 1 (4 pubs -> 1 sub), msgs/s",
    "fanin_q2": "fan-in QoS 2 (4 pubs -> 1 sub), msgs/s",
    "fanout": "fan-out QoS 0 (1 pub -> 100 subs), deliveries/s",
}
TARGETS = ("zanzara:tcp", "zanzara:ws", "mosquitto:tcp", "mosquitto:ws")


def main(path: str) -> None:
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    lost: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    scenarios: list[str] = []
    with open(path) as file:
        for line in file:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            target, _, scen = record.get("label", "").rpartition(":")
            if scen not in scenarios:
                scenarios.append(scen)
            if "error" in record or scen not in METRIC:
                failed[target] += 1
                continue
            values[target, scen].append(float(record[METRIC[scen]]))
            lost[target] += max(0, int(record.get("lost", 0))) + int(record.get("dups", 0))

    def med(target: str, scen: str) -> float | None:
        runs = values.get((target, scen))
        return statistics.median(runs) if runs else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a and b else "-"

    def cell(target: str, scen: str) -> str:
        runs = values.get((target, scen))
        if not runs:
            return "-"
        return f"{statistics.median(runs):,.0f} [{min(runs):,.0f}-{max(runs):,.0f}]"

    ratios = ("zanzara ws/tcp", "mosquitto ws/tcp", "ws zanzara/mosquitto")
    print("| scenario | " + " | ".join((*TARGETS, *ratios)) + " |")
    print("|---" * (len(TARGETS) + 4) + "|")
    for scen in scenarios:
        if scen not in METRIC:
            continue
        zt, zw, mt, mw = (med(t, scen) for t in TARGETS)
        cells = " | ".join(cell(t, scen) for t in TARGETS)
        print(f"| {TITLE[scen]} | {cells} | {ratio(zw, zt)} | {ratio(mw, mt)} | {ratio(zw, mw)} |")
    print()
    print("lost or duplicated messages: " + ", ".join(f"{t} {lost[t]}" for t in TARGETS))
    if any(failed.values()):
        print("failed runs: " + ", ".join(f"{t} {n}" for t, n in failed.items() if n))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
