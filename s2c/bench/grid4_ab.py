"""Same-session A/B of the 4-party wire (``net`` scenario ``grid4``) across installed copies of s2c.

Owns: one ``grid4`` run whose clients and relay import s2c from a given directory (``--site``,
e.g. a ``pip install --target`` copy of another commit; none: this install), its summary line
and JSON. Must not: change the scenario's figures or what the clients do; for code without
layers (``--no-tile-px``) the grid receiver runs without ``--tile-px``, which it would not know.

``python -m s2c.bench.grid4_ab --site /tmp/net_base/site --no-tile-px --seconds 15 --json F``
(hold ``/work/bench.lock`` around it, like every net run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

from . import suite_net as N


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m s2c.bench.grid4_ab")
    ap.add_argument("--site", help="directory the clients and the relay import s2c from (PYTHONPATH)")
    ap.add_argument("--no-tile-px", action="store_true", help="code without layers: no --tile-px for p1")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--json", help="write the run's result here")
    ap.add_argument("--transport", choices=("auto", "quic", "tcp"), default="auto",
                    help="the clients' --transport (auto: theirs, no flag)")
    a = ap.parse_args(argv)
    if a.site:
        os.environ["PYTHONPATH"] = a.site       # the subprocesses inherit it
    if a.no_tile_px:
        N.SCENARIOS["grid4"] = replace(N.SCENARIOS["grid4"], args={})
    N.LAYERS = "on"
    N.TRANSPORT = a.transport
    res = N.run_scenario("grid4", a.seconds)
    w = res["wire"]["p1"]
    print(N.format_pairs(res))
    print(f"grid4 site={a.site or 'this install'} load={os.getloadavg()[0]:.1f}: into p1 {w['down_kbps']:.1f} kbit/s, "
          f"{w['down_packets']} packets, video payload {res['video_in_kbps'].get('p1', float('nan')):.1f} kbit/s")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
