"""``python -m bench``: measure the hot paths against a real server (see ``docs/benchmarks.md``).

Options (or environment): ``--profile embedded|services`` (``SMARTCIRCLE_PROFILE``), ``--full``
(``BENCH_FULL=1``: 100,000 venues, 1,000,000 holdings), ``--workers N`` (``SMARTCIRCLE_WORKERS``;
the embedded profile runs one), ``--seconds S`` (``BENCH_SECONDS``: per scenario and connection
count), ``--levels 1,16,64``, ``--no-docs`` (leave ``docs/benchmarks.md`` alone) and
``--only SCENARIO[,SCENARIO]`` (measure only those, with the ceilings they are compared with; a
partial run never writes the docs). Scenarios: noop, signed_in, me, venue_search, es_direct,
book_search, votes, pg_insert, ranking, booking_race.
"""

from __future__ import annotations

import argparse
import os
import sys

from bench.config import LEVELS, make_config
from bench.runner import run


def main(argv: list[str] | None = None) -> int:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--profile",
        choices=("embedded", "services"),
        default=env.get("SMARTCIRCLE_PROFILE") or "embedded",
    )
    parser.add_argument("--full", action="store_true", default=env.get("BENCH_FULL") == "1")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--seconds", type=float, default=float(env.get("BENCH_SECONDS") or 0) or None
    )
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--only", default=env.get("BENCH_ONLY") or None)
    args = parser.parse_args(argv)
    config = make_config(
        profile=args.profile,
        full=args.full,
        seconds=args.seconds,
        workers=args.workers,
        levels=tuple(int(x) for x in args.levels.split(",")),
        docs=not args.no_docs,
        only=args.only,
    )
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
