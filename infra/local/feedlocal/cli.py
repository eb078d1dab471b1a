"""feedctl: run the service locally — database, demo data, scores, HTTP server."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError
from pydantic_settings import BaseSettings

# Local runs log as one service; in Lambda each function sets its own name.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "feedctl")

from feedcore import settings  # noqa: E402
from feedcore.errors import DatabaseUnavailable, InvalidArgument, ModelImportFailed  # noqa: E402
from feedcore.ingestion.retention import MAX_KEEP_DAYS, apply_retention  # noqa: E402
from feedlocal import embedded  # noqa: E402

DEMO_NEW_USER = "user-demo"


def _connect() -> psycopg.Connection:
    return psycopg.connect(embedded.ensure_database_url(), autocommit=True)


def cmd_migrate(_: argparse.Namespace) -> None:
    applied = embedded.migrate_database(embedded.ensure_database_url())
    print(f"migrations applied: {', '.join(applied) if applied else 'none (schema is current)'}")


def cmd_seed(args: argparse.Namespace) -> None:
    from feedlocal.demo import load_dataset
    from feedlocal.seed import generate

    embedded.migrate_database(embedded.ensure_database_url())
    dataset = generate(users=args.users, stores=args.stores, days=args.days, seed=args.seed, now=datetime.now(UTC))
    with _connect() as conn:
        stored = load_dataset(conn, dataset)
    print(
        f"seeded {len(dataset.stores)} stores, {len(dataset.items)} items, {len(dataset.users)} users; "
        f"{stored} of {len(dataset.events)} events were new"
    )


def cmd_recompute(args: argparse.Namespace) -> None:
    embedded.ensure_usable_database()
    from feedcore.scoring.service import RecomputeRequest, refresh_scores

    if args.full:
        print("rebuilding every score from the whole event log (one statement per table)…", file=sys.stderr)
    result = refresh_scores(RecomputeRequest(mode="full" if args.full else "incremental"))
    print(json.dumps(result.model_dump(mode="json")))


def cmd_serve(args: argparse.Namespace) -> None:
    embedded.migrate_database(embedded.ensure_database_url())
    # No API Gateway authorizer here: development tokens (`dev:<user_id>`, `dev:<user_id>:admin`) stand in for
    # verified ones, so the same authorization checks run (AUTH_DEV_TOKENS=false turns them off).
    os.environ.setdefault("AUTH_DEV_TOKENS", "true")
    from feedlocal.server import serve

    print(
        f"serving on http://{args.host}:{args.port} (API docs at /docs); "
        "send `authorization: Bearer dev:<user_id>` (or dev:<user_id>:admin); Ctrl-C stops",
        flush=True,
    )
    serve(args.host, args.port)


def cmd_demo(args: argparse.Namespace) -> None:
    """Everything a newcomer needs: database, schema, demo data, scores, example calls, server."""
    from feedlocal.demo import demo_example

    cmd_seed(args)
    cmd_recompute(argparse.Namespace(full=False))
    with _connect() as conn:
        user_id, store_id, item_id, price = demo_example(conn)
    print_examples(f"http://{args.host}:{args.port}", user_id, store_id, item_id, price)
    cmd_serve(args)


def print_examples(base_url: str, user_id: str, store_id: str, item_id: str, price: float) -> None:
    purchase = {
        "events": [
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"feed-assembly-demo/{item_id}")),
                "type": "purchase",
                "user_id": DEMO_NEW_USER,
                "store_id": store_id,
                # Last week's order: one placed minutes ago would be held back as just purchased.
                "occurred_at": (datetime.now(UTC) - timedelta(days=7)).replace(microsecond=0).isoformat(),
                "order_id": "order-demo-1",
                "items": [{"item_id": item_id, "quantity": 1, "unit_price": price}],
            }
        ]
    }
    print(
        f"""
Try it (in another terminal):

  # Locally a development token names the caller (in the cloud: a Cognito token); a user may read only
  # their own feed and send only their own events.

  # 1. the feed of a seeded user at their home store
  curl -s '{base_url}/v1/users/{user_id}/feed?store_id={store_id}' -H 'authorization: Bearer dev:{user_id}'

  # 2. last week's order of a new user; run it twice: the second time stores nothing new
  curl -s -X POST {base_url}/v1/events -H 'authorization: Bearer dev:{DEMO_NEW_USER}' \\
       -H 'content-type: application/json' -d {shlex.quote(json.dumps(purchase))}
  # then refresh the scores and see the item in {DEMO_NEW_USER}'s "buy_again" section
  .venv/bin/feedctl recompute
  curl -s '{base_url}/v1/users/{DEMO_NEW_USER}/feed?store_id={store_id}' -H 'authorization: Bearer dev:{DEMO_NEW_USER}'
""",
        flush=True,
    )


def cmd_retention(args: argparse.Namespace) -> None:
    embedded.ensure_usable_database()
    result = apply_retention(args.keep_days)
    dropped = result.dropped_partitions
    print(
        f"dropped {len(dropped)} event partitions"
        + (f" ({', '.join(dropped)})" if dropped else "")
        + f", {result.event_ids_deleted} event ids and {result.feeds_deleted} feed records"
    )


def cmd_bench_ingest(args: argparse.Namespace) -> None:
    from feedlocal.bench import bench_ingest, print_result

    print(
        f"ingest benchmark: {args.events} events in batches of {args.batch_size}, {args.workers} workers",
        file=sys.stderr,
    )
    print_result(bench_ingest(args.events, args.batch_size, args.workers))


def cmd_eval_instacart(args: argparse.Namespace) -> None:
    from feedlocal.embedded import scratch_database
    from feedlocal.instacart import evaluate

    print(f"evaluating on {args.directory} (k={args.k}) in a scratch database", file=sys.stderr)
    with scratch_database("feed_eval"):
        result = evaluate(Path(args.directory), args.k, args.users)
    print(json.dumps(result), flush=True)


def cmd_instacart_split(args: argparse.Namespace) -> None:
    from feedlocal.instacart import split_flat_table

    users = split_flat_table(Path(args.flat_csv), Path(args.out))
    print(f"wrote orders.csv and order_products__{{prior,train}}.csv for {users} users to {args.out}")


def cmd_instacart_synthetic(args: argparse.Namespace) -> None:
    from feedlocal.instacart import write_synthetic

    write_synthetic(Path(args.out), users=args.users, seed=args.seed)
    print(f"wrote a synthetic dataset of {args.users} users to {args.out}")


def cmd_bench_recompute(args: argparse.Namespace) -> None:
    from feedlocal.bench import bench_recompute, default_new_events, print_result

    new_events = default_new_events(args.events) if args.new_events is None else args.new_events
    print(
        f"recompute benchmark: {args.events} events of history from {args.users} users, then {new_events} more",
        file=sys.stderr,
    )
    print_result(bench_recompute(args.events, new_events, args.users))


def cmd_bench_fanout(args: argparse.Namespace) -> None:
    from feedlocal.bench import bench_fanout, print_result

    print(
        f"fan-out benchmark: {args.events} events of history, then {args.backlog} more in one invocation and "
        f"fanned out to {args.shards} shards",
        file=sys.stderr,
    )
    print_result(bench_fanout(args.events, args.backlog, args.shards))


def cmd_bench_feed(args: argparse.Namespace) -> None:
    from feedlocal.bench import bench_feed, print_result

    print(
        f"feed benchmark: {args.users} users, {args.items} items, {args.stores} stores, {args.events} events",
        file=sys.stderr,
    )
    print_result(bench_feed(args.users, args.items, args.stores, args.events, args.requests, args.keep_database))


def cmd_bench_coldstart(args: argparse.Namespace) -> None:
    from feedlocal.bench import bench_coldstart, print_result

    print(f"cold start benchmark: {args.runs} fresh interpreters", file=sys.stderr)
    print_result(bench_coldstart(args.runs))


def cmd_report(args: argparse.Namespace) -> None:
    from msgspec import structs

    from feedcore.db.attribution import section_report

    with psycopg.connect(embedded.ensure_usable_database(), autocommit=True) as conn:
        rows = section_report(conn, args.since, args.attribution_hours)
    print(f"{'experiment / variant':<32} {'section':<20} {'impr.':>8} {'CTR':>7} {'ATC rate':>9} {'purch.':>7}")
    report = []
    for row in rows:
        ctr = row.clicks / row.impressions if row.impressions else None
        atc = row.add_to_carts / row.impressions if row.impressions else None
        label = f"{row.experiment or '-'} / {row.variant}"
        print(
            f"{label:<32} {row.section:<20} {row.impressions:>8} {_percent(ctr):>7} {_percent(atc):>9} "
            f"{row.purchases:>7}"
        )
        report.append(structs.asdict(row) | {"ctr": ctr, "add_to_cart_rate": atc})
    print(json.dumps({"since": args.since.isoformat(), "sections": report}))


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`), refused by name otherwise."""

    def whole_number(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
        if number < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {number}")
        if high is not None and number > high:
            raise argparse.ArgumentTypeError(f"must be at most {high}, not {number}")
        return number

    return whole_number


_positive_int = _int_in(1)
_port = _int_in(1, 65_535)
# The demo dataset's bounds, against a typo: each alone takes minutes at most to generate and load (100,000 users
# make ~10M events; 3,650 days ~600,000 for 200 users; 1,000 stores 341,000 availability rows), where a number
# far past them ran for hours, and a history reaching back past year 1 cannot be dated (an OverflowError).
MAX_SEED_USERS = 100_000
MAX_SEED_STORES = 1_000
MAX_SEED_DAYS = 3_650


def _timestamp(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date or time, e.g. 2026-11-01, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# The longest attribution window a report takes: a year.
MAX_ATTRIBUTION_HOURS = 8760


def _attribution_window(text: str) -> timedelta:
    try:
        hours = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, not {text!r}") from None
    if not 0 < hours <= MAX_ATTRIBUTION_HOURS:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_ATTRIBUTION_HOURS} hours, not {text}")
    return timedelta(hours=hours)


def cmd_openapi(args: argparse.Namespace) -> None:
    from feedcore.api.resolvers import openapi_document

    Path(args.out).write_text(openapi_document())
    print(f"wrote {args.out}")


def cmd_moto(args: argparse.Namespace) -> None:
    """moto in server mode with the stack's queues, bucket and database secret, and the queues' consumers (as
    Lambda's event source mappings would run them), until Ctrl-C."""
    import time

    from feedlocal.aws_local import create_local_resources, deliver_queue_batch, endpoint_url, start_moto_server
    from feedlocal.bench import load_handler_module

    server = start_moto_server(args.host, args.port)
    database_url = embedded.ensure_database_url()
    embedded.migrate_database(database_url)
    local = create_local_resources(endpoint_url(args.host, args.port), database_url)
    consumers = {
        local.ingest_queue_url: ("ingest_queue", load_handler_module("ingest_events").queue_handler),
        local.shard_queue_url: ("recompute_shards", load_handler_module("recompute_scores").shard_handler),
    }
    exports = "\n".join(f"  export {name}={shlex.quote(value)}" for name, value in local.environment().items())
    print(
        f"moto serves SQS, S3 and Secrets Manager on {local.endpoint_url}\n"
        f"  ingest queue {local.ingest_queue_url} (dead letters: {local.ingest_dead_letter_queue_url}),\n"
        "  consumed here by ingest_events.queue_handler as Lambda would\n"
        f"  score shard queue {local.shard_queue_url} (dead letters: {local.shard_dead_letter_queue_url}),\n"
        "  consumed here by recompute_scores.shard_handler\n"
        f"  model scores s3://{local.model_scores_bucket}/model-scores/<model>/<file>.csv\n"
        f"Point feedctl (serve, recompute) at them in another shell:\n{exports}\n"
        "Ctrl-C stops",
        flush=True,
    )
    sqs = local.sqs()
    try:
        while True:
            received = [
                deliver_queue_batch(sqs, queue_url, consumer, function_name=function_name)[0]
                for queue_url, (function_name, consumer) in consumers.items()
            ]
            if not any(received):
                time.sleep(1)
    finally:
        server.stop()


def cmd_sam_env(args: argparse.Namespace) -> None:
    from feedlocal.aws_local import write_sam_local_environment

    write_sam_local_environment(Path(args.out), args.database_url, args.aws_endpoint_url)
    print(f"wrote {args.out}; run: sam build && sam local start-api --env-vars {args.out}")


def cmd_db(args: argparse.Namespace) -> None:
    if args.action == "url":
        print(embedded.ensure_database_url())
    elif embedded.stop_embedded_server():
        print("embedded database stopped")
    else:
        print("embedded database is not running")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="feedctl",
        description="Run the feed service locally. Uses DATABASE_URL when set, else an embedded PostgreSQL.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("migrate", help="apply pending schema migrations").set_defaults(func=cmd_migrate)

    def add_seed_options(p: argparse.ArgumentParser) -> None:
        users, stores, days = _int_in(0, MAX_SEED_USERS), _int_in(1, MAX_SEED_STORES), _int_in(1, MAX_SEED_DAYS)
        p.add_argument("--users", type=users, default=200, help=f"shoppers (default 200, at most {MAX_SEED_USERS:,})")
        p.add_argument("--stores", type=stores, default=3, help=f"stores (default 3, at most {MAX_SEED_STORES:,})")
        history = f"days of shopping history (default 120, at most {MAX_SEED_DAYS:,})"
        p.add_argument("--days", type=days, default=120, help=history)
        p.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same data")

    def add_serve_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=_port, default=3000)

    seed = commands.add_parser("seed", help="load a deterministic grocery dataset (idempotent)")
    add_seed_options(seed)
    seed.set_defaults(func=cmd_seed)

    recompute = commands.add_parser(
        "recompute",
        help="the scheduled job: score the events since the last run, import new model score files "
        "(with MODEL_SCORES_BUCKET), delete expired feed snapshots",
    )
    recompute.add_argument("--full", action="store_true", help="rebuild every score from the whole event log")
    recompute.set_defaults(func=cmd_recompute)

    serve = commands.add_parser("serve", help="serve the API on localhost")
    add_serve_options(serve)
    serve.set_defaults(func=cmd_serve)

    demo = commands.add_parser("demo", help="migrate, seed, recompute, print example calls, serve")
    add_seed_options(demo)
    add_serve_options(demo)
    demo.set_defaults(func=cmd_demo)

    retention = commands.add_parser("retention", help="drop monthly event partitions older than --keep-days")
    retention.add_argument(
        "--keep-days",
        type=_int_in(1, MAX_KEEP_DAYS),
        required=True,
        help=f"days of events to keep (more than the late-event horizon, at most {MAX_KEEP_DAYS})",
    )
    retention.set_defaults(func=cmd_retention)

    bench = commands.add_parser("bench", help="benchmarks; each prints a final JSON line").add_subparsers(
        dest="benchmark", required=True
    )
    bench_ingest = bench.add_parser("ingest", help="events/s through the ingest handler vs a raw COPY")
    bench_ingest.add_argument("--events", type=_positive_int, default=200_000, help="events to load (default 200,000)")
    bench_ingest.add_argument("--batch-size", type=_positive_int, default=500, help="events per request (default 500)")
    bench_ingest.add_argument(
        "--workers", type=_positive_int, default=2, help="concurrent senders, like warm Lambda containers (default 2)"
    )
    bench_ingest.set_defaults(func=cmd_bench_ingest)

    evaluation = commands.add_parser(
        "eval-instacart", help="offline evaluation on files in the Instacart Market Basket Analysis format"
    )
    evaluation.add_argument("directory", help="folder with orders.csv, order_products__prior.csv, ..._train.csv")
    evaluation.add_argument("--k", type=_positive_int, default=10, help="recommendations per user (default 10)")
    evaluation.add_argument("--users", type=_positive_int, default=None, help="evaluate at most this many users")
    evaluation.set_defaults(func=cmd_eval_instacart)

    split = commands.add_parser(
        "instacart-split", help="turn one flat table of order lines into the competition's files"
    )
    split.add_argument("flat_csv")
    split.add_argument("out")
    split.set_defaults(func=cmd_instacart_split)

    synthetic = commands.add_parser("instacart-synthetic", help="write a small synthetic dataset in that format")
    synthetic.add_argument("out")
    synthetic.add_argument("--users", type=_positive_int, default=60)
    synthetic.add_argument("--seed", type=int, default=5)
    synthetic.set_defaults(func=cmd_instacart_synthetic)

    bench_recompute = bench.add_parser(
        "recompute", help="full rebuild vs an incremental run after 1 %% more events (or --new-events)"
    )
    bench_recompute.add_argument(
        "--events", type=_positive_int, default=2_000_000, help="events of history (default 2M)"
    )
    bench_recompute.add_argument(
        "--new-events",
        type=_positive_int,
        metavar="N",
        help="events added before the incremental run (default 1 %% of --events); a fixed N at several --events "
        "shows whether the run's time grows with the history",
    )
    bench_recompute.add_argument(
        "--users",
        type=_positive_int,
        default=50_000,
        help="users the events are drawn from (default 50,000); more users at a fixed --new-events "
        "show whether the run's time grows with how many users the history knows",
    )
    bench_recompute.set_defaults(func=cmd_bench_recompute)

    bench_fanout = bench.add_parser("fanout", help="a backlog in one invocation vs fanned out to user shards")
    bench_fanout.add_argument(
        "--events", type=_positive_int, default=400_000, help="events of history (default 400,000)"
    )
    bench_fanout.add_argument(
        "--backlog", type=_positive_int, default=100_000, help="events of the backlog (default 100,000)"
    )
    bench_fanout.add_argument(
        "--shards",
        type=_int_in(settings.MIN_SHARDS, settings.MAX_SHARDS),
        default=4,
        help=f"user shards (default 4, {settings.MIN_SHARDS}-{settings.MAX_SHARDS})",
    )
    bench_fanout.set_defaults(func=cmd_bench_fanout)

    bench_feed = bench.add_parser("feed", help="feed latency through the handler vs a SELECT 1 round trip")
    bench_feed.add_argument("--users", type=_positive_int, default=50_000, help="users (default 50,000)")
    bench_feed.add_argument("--items", type=_positive_int, default=20_000, help="catalog items (default 20,000)")
    bench_feed.add_argument("--stores", type=_positive_int, default=20, help="stores (default 20)")
    bench_feed.add_argument("--events", type=_positive_int, default=2_000_000, help="events of history (default 2M)")
    bench_feed.add_argument("--requests", type=_positive_int, default=2000, help="timed feed requests (default 2,000)")
    bench_feed.add_argument(
        "--keep-database",
        metavar="NAME",
        help="keep the seeded database under this name, and reuse it when it holds the same sizes (skips seeding)",
    )
    bench_feed.set_defaults(func=cmd_bench_feed)

    bench_coldstart = bench.add_parser("coldstart", help="import-to-first-feed time of a fresh handler process")
    bench_coldstart.add_argument(
        "--runs", type=_positive_int, default=5, help="fresh interpreters to start (default 5)"
    )
    bench_coldstart.set_defaults(func=cmd_bench_coldstart)

    report = commands.add_parser(
        "report", help="impressions, CTR and add-to-cart rate per feed section and experiment variant"
    )
    report.add_argument("--since", type=_timestamp, required=True, help="ISO date or time, e.g. 2026-11-01")
    report.add_argument(
        "--attribution-hours",
        type=_attribution_window,
        default=timedelta(hours=24),
        help=f"a purchase counts for a click or add this recent (default 24, at most {MAX_ATTRIBUTION_HOURS})",
    )
    report.set_defaults(func=cmd_report)

    openapi = commands.add_parser("openapi", help="write the OpenAPI document of every route")
    openapi.add_argument("--out", default="openapi.json", help="file to write (default openapi.json)")
    openapi.set_defaults(func=cmd_openapi)

    moto = commands.add_parser("moto", help="moto server mode with the stack's queues, bucket and database secret")
    moto.add_argument("--host", default="127.0.0.1")
    moto.add_argument("--port", type=_port, default=5000)
    moto.set_defaults(func=cmd_moto)

    sam_env = commands.add_parser("sam-env", help="write env.json for `sam local start-api --env-vars env.json`")
    sam_env.add_argument(
        "--database-url",
        required=True,
        help="a PostgreSQL the Lambda containers can reach over TCP, e.g. "
        "postgresql://postgres:feed@host.docker.internal:5432/postgres (the embedded one listens on a socket only)",
    )
    sam_env.add_argument("--aws-endpoint-url", help="moto's URL as the containers see it (see `feedctl moto`)")
    sam_env.add_argument("--out", default="env.json")
    sam_env.set_defaults(func=cmd_sam_env)

    db = commands.add_parser("db", help="the embedded database: print its URL or stop it")
    db.add_argument("action", choices=["url", "stop"])
    db.set_defaults(func=cmd_db)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run a command. An error an operator can act on ends it in one line and exit status 1 (with FEEDCTL_DEBUG=1,
    in its traceback); any other error is a bug, and shows its traceback."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        problem = _operator_problem(exc)
        if problem is None or os.environ.get("FEEDCTL_DEBUG") == "1":
            raise
        sys.exit(f"feedctl {args.command}: {problem}")


def _operator_problem(exc: Exception) -> str | None:
    """The line that says what went wrong, with the error's notes; None for an error that is not the operator's."""
    if isinstance(exc, (psycopg.OperationalError, DatabaseUnavailable)):
        problem = f"the database is unavailable: {exc}"
    elif isinstance(exc, (BotoCoreError, ClientError)):  # e.g. MODEL_SCORES_BUCKET names no bucket, or no AWS
        problem = f"AWS: {exc}"
    elif isinstance(exc, ValidationError) and _is_settings(exc):
        problem = "invalid settings: " + "; ".join(_setting_errors(exc))
    # a dataset or argument out of range, a file, a port; models not imported (the others were)
    elif isinstance(exc, (InvalidArgument, OSError, ModelImportFailed)):
        problem = str(exc)
    else:
        return None
    return "; ".join([problem, *getattr(exc, "__notes__", ())])


def _is_settings(exc: ValidationError) -> bool:
    """Whether the error is one of feedcore.settings' models (the environment), not of a bug's."""
    model = getattr(settings, exc.title, None)
    return isinstance(model, type) and issubclass(model, BaseSettings)


def _setting_errors(exc: ValidationError) -> list[str]:
    """Each error as "<ENVIRONMENT_VARIABLE>: <why>" (without the value: it may be a secret)."""
    model = getattr(settings, exc.title)
    prefix = model.model_config.get("env_prefix", "")
    described = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        variable = f"{prefix}{name}".upper() if name in model.model_fields else name  # else an alias, or none
        described.append(f"{variable}: {error['msg']}" if variable else error["msg"])
    return described
