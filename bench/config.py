"""What one bench run uses: profile, variant (short or full), sizes, durations, workers, places.

Everything the server process and the bench itself read comes from one environment
(:meth:`BenchConfig.server_env`), so both see the same database, key prefix and index prefix —
never the test database (``smartcircle_test``) or the development one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from backend.config import Settings

REPO = Path(__file__).resolve().parent.parent
LEVELS = (1, 16, 64)
# Votes come in bursts after a WeChat push: with the default levels, the votes and their INSERT
# ceiling are also measured at this many connections (the booking race's 256 residents).
VOTE_BURST = 256
BENCH_DATABASE = "smartcircle_bench"
KV_PREFIX = "bench:"
ES_PREFIX = "bench"
JWT_SECRET = "bench-only-secret-not-for-production-0123456789"  # noqa: S105 - bench data only
SERVICE_VARS = ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "TEST_DATABASE_URL")
# Every scenario a run can measure, in the order it runs them (``--only`` picks some).
SCENARIOS = (
    "noop",
    "signed_in",
    "me",
    "venue_search",
    "es_direct",
    "book_search",
    "votes",
    "pg_insert",
    "ranking",
    "booking_race",
)


@dataclass(frozen=True)
class BenchConfig:
    profile: str  # embedded | services
    full: bool
    venues: int
    holdings: int  # target; the generator's granularity is one reading space
    titles: int
    people: int  # distinct voters (each votes at most once per hot pain point)
    seconds: float  # per scenario and concurrency
    warmup: float
    levels: tuple[int, ...]
    workers: int
    out_dir: Path
    docs: Path | None  # docs/benchmarks.md to update, or None
    database_url: str
    redis_url: str
    elasticsearch_url: str
    only: frozenset[str] = frozenset(SCENARIOS)
    kv_prefix: str = KV_PREFIX
    es_prefix: str = ES_PREFIX

    @property
    def vote_levels(self) -> tuple[int, ...]:
        """The connection counts of the votes and their ceiling: the run's, and a push's burst
        when the run uses the default ones."""
        return (*self.levels, VOTE_BURST) if self.levels == LEVELS else self.levels

    def runs(self, scenario: str) -> bool:
        """Whether this run measures ``scenario`` (every one unless ``--only`` chose)."""
        return scenario in self.only

    @property
    def partial(self) -> bool:
        return self.only != frozenset(SCENARIOS)

    @property
    def variant(self) -> str:
        return "full" if self.full else "short"

    @property
    def var_dir(self) -> Path:
        return self.out_dir / self.profile

    def server_env(self) -> dict[str, str]:
        """The environment of the server process (and of the bench's own settings)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SMARTCIRCLE_") and k not in SERVICE_VARS
        }
        env.update(
            SMARTCIRCLE_PROFILE=self.profile,
            SMARTCIRCLE_VAR_DIR=str(self.var_dir),
            SMARTCIRCLE_WORKERS=str(self.workers),
            SMARTCIRCLE_KV_PREFIX=self.kv_prefix,
            SMARTCIRCLE_ES_INDEX_PREFIX=self.es_prefix,
            SMARTCIRCLE_JWT_SECRET=JWT_SECRET,
            SMARTCIRCLE_SCHEDULER="0",
            SMARTCIRCLE_LOG_LEVEL="WARNING",
        )
        if self.profile == "services":
            env.update(
                DATABASE_URL=self.database_url,
                REDIS_URL=self.redis_url,
                ELASTICSEARCH_URL=self.elasticsearch_url,
            )
        return env

    def settings(self) -> Settings:
        return Settings.from_env(self.server_env())


def bench_database_url(url: str, name: str = BENCH_DATABASE) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def prefixes(database: str | None) -> tuple[str, str]:
    """The key and index prefixes of a run: another database (``BENCH_DATABASE``) gets its own,
    so two runs side by side never empty each other's keys or indexes."""
    if not database or database == BENCH_DATABASE:
        return KV_PREFIX, ES_PREFIX
    return f"{database}:", database.replace("_", "-").lower()


def select(only: str | None) -> frozenset[str]:
    """The scenarios ``--only a,b`` names, with the ceilings they are compared with."""
    from bench.ceilings import CEILING_OF, CEILING_SCENARIO  # noqa: PLC0415 - bench.wrk imports us

    if not only:
        return frozenset(SCENARIOS)
    chosen = {name.strip() for name in only.split(",") if name.strip()}
    unknown = sorted(chosen - set(SCENARIOS))
    if unknown or not chosen:
        raise SystemExit(
            f"--only: unknown scenario(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(SCENARIOS)}"
        )
    for name in list(chosen):
        chosen.update(CEILING_SCENARIO[c] for c in CEILING_OF.get(name, ()))
    return frozenset(chosen)


def make_config(
    *,
    profile: str,
    full: bool,
    seconds: float | None = None,
    workers: int | None = None,
    levels: tuple[int, ...] = LEVELS,
    docs: bool = True,
    only: str | None = None,
) -> BenchConfig:
    env = os.environ
    if workers is None:
        workers = int(env.get("SMARTCIRCLE_WORKERS") or (2 if profile == "services" else 1))
    if profile == "embedded" and workers != 1:
        raise SystemExit("the embedded profile runs exactly one worker")
    database_url = redis_url = elasticsearch_url = ""
    kv_prefix, es_prefix = prefixes(env.get("BENCH_DATABASE"))
    if profile == "services":
        missing = [n for n in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL") if not env.get(n)]
        if missing:
            raise SystemExit(f"services profile: {', '.join(missing)} not set (make services-up)")
        database_url = bench_database_url(
            env["DATABASE_URL"], env.get("BENCH_DATABASE", BENCH_DATABASE)
        )
        redis_url = env["REDIS_URL"]
        elasticsearch_url = env["ELASTICSEARCH_URL"]
    return BenchConfig(
        profile=profile,
        full=full,
        venues=100_000 if full else 3_000,
        holdings=1_000_000 if full else 100_000,
        titles=3_000,
        people=30_000 if full else 20_000,
        seconds=seconds if seconds is not None else 10.0,
        warmup=2.0,
        levels=levels,
        workers=workers,
        out_dir=REPO / "var" / "bench",
        # A partial run never replaces the run recorded in the docs.
        docs=REPO / "docs" / "benchmarks.md" if docs and not only else None,
        database_url=database_url,
        redis_url=redis_url,
        elasticsearch_url=elasticsearch_url,
        only=select(only),
        kv_prefix=kv_prefix,
        es_prefix=es_prefix,
    )
