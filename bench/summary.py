"""Ratios for bench/durable.sh: offline (publish phase and drain, per size) and fan-in, per store.

usage: python3 bench/summary.py FILE.jsonl...   (the raw files compare.sh wrote; one store each)
"""

from __future__ import annotations

import json
import statistics
import sys


def main(paths: list[str]) -> None:
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for path in paths:
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if "error" in d:
                    print(f"error: {d}", file=sys.stderr)
                    continue
                who, scen = d["label"].split(":", 1)
                r = rows.setdefault((scen, who), {})
                for key in ("publish_s", "drain_s", "msgs_per_s", "recv_msgs_per_s", "lost", "dups"):
                    if key in d:
                        r.setdefault(key, []).append(float(d[key]))
    for (scen, who), r in sorted(rows.items()):
        if who != "broker":
            continue
        base = rows.get((scen, "mosquitto"), {})
        for key, vals in r.items():
            if key in ("lost", "dups"):
                print(
                    f"{scen:12} {key:16} zanzara {sum(vals):10.0f}  mosquitto {sum(base.get(key, [])):10.0f}"
                )
                continue
            med = statistics.median(vals)
            bmed = statistics.median(base[key]) if base.get(key) else float("nan")
            # Speed ratio, higher is better: time ratios are inverted.
            ratio = bmed / med if key in ("publish_s", "drain_s") else med / bmed
            lo, hi = min(vals), max(vals)
            print(
                f"{scen:12} {key:16} zanzara {med:10.3f} [{lo:.3f}-{hi:.3f}]  mosquitto {bmed:10.3f}"
                f"  speed ratio {ratio:.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
