"""`metering`: one command for every deployable and operator task."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.settings import Settings, describe, problems


def _configure_logging() -> None:
    from services.infra.logs import configure

    configure()


def _bootstrap(settings: Settings) -> str:
    if settings.kafka.bootstrap_servers is None:
        raise SystemExit(
            "KAFKA_BOOTSTRAP_SERVERS is required to run a single service (`metering up` starts a local broker)"
        )
    return settings.kafka.bootstrap_servers


def cmd_up(settings: Settings, _: argparse.Namespace) -> int:
    from services.infra.stack import Stack

    settings.require_api_key()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stack = Stack(settings)
    try:
        stack.start()
        logging.getLogger("metering").info(
            "pipeline ready: ingest %s, broker %s; Ctrl-C stops", stack.ingest_url, stack.bootstrap
        )
        stop.wait()
    finally:
        stack.stop()
    return 0


def cmd_demo(settings: Settings, _: argparse.Namespace) -> int:
    from services.demo import run_demo

    return run_demo(settings)


def cmd_ingest(settings: Settings, _: argparse.Namespace) -> int:
    settings.require_api_key()
    bootstrap = _bootstrap(settings)
    if settings.http.ingest_processes > 1:
        # Imported apart: the group's parent only supervises, and each worker imports the
        # app itself (services.ingest.main.worker_app).
        from services.ingest.process_group import serve

        serve(settings)
    else:
        from services.ingest.main import run

        run(settings, bootstrap)
    return 0


def cmd_aggregator(settings: Settings, _: argparse.Namespace) -> int:
    from services.aggregator.worker import run

    run(settings, _bootstrap(settings))
    return 0


def cmd_rater(settings: Settings, _: argparse.Namespace) -> int:
    from services.rater.main import run

    run(settings, _bootstrap(settings))
    return 0


def cmd_kafka(settings: Settings, args: argparse.Namespace) -> int:
    from services.infra.kafka_broker import LocalKafkaBroker, fetch_jars

    if args.action == "fetch":
        print(fetch_jars())
        return 0
    broker = LocalKafkaBroker(settings.data_dir / "kafka", port=args.port).start()
    print(f"Kafka broker at {broker.bootstrap_servers}; Ctrl-C stops", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        broker.stop()
    return 0


def cmd_catalog(settings: Settings, args: argparse.Namespace) -> int:
    """Validate a catalog file against the live catalog, then publish the file's entities."""
    from services.infra.catalog_view import CatalogView, publish
    from services.infra.topics import ensure_topics
    from shared.catalog import apply_document

    bootstrap = _bootstrap(settings)
    ensure_topics(settings, bootstrap)
    document = _load(Path(args.file))
    view = CatalogView(settings, bootstrap).start()
    try:
        # A copy: the view's own thread keeps applying the topic meanwhile.
        changes, problems = apply_document(view.catalog.copy(), document)
        if problems:
            for path, reason in problems:
                print(f"{path}: {reason}", file=sys.stderr)
            return 1
        publish(settings, bootstrap, changes)
        print(f"applied {len(changes)} catalog entities")
    finally:
        view.stop()
    return 0


def _load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: a catalog is a mapping of meters, price_plans, customers, subscriptions")
    return data


def cmd_topics(settings: Settings, _: argparse.Namespace) -> int:
    from services.infra.topics import ALL, ensure_topics, name

    ensure_topics(settings, _bootstrap(settings))
    print("topics ready: " + ", ".join(name(settings, spec) for spec in ALL))
    return 0


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from services.infra.clickhouse_store import apply_migrations, connect

    applied = apply_migrations(connect(settings))
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def cmd_send(settings: Settings, args: argparse.Namespace) -> int:
    from services.sending import send_file

    return send_file(Path(args.file), _client(settings, args), args.batch_size, concurrency=args.concurrency)


def cmd_invoice(settings: Settings, args: argparse.Namespace) -> int:
    from shared.client import RejectedBatch

    try:
        preview = _client(settings, args).invoice_preview(args.customer)
    except RejectedBatch as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(preview, indent=2))
    return 0


def cmd_check_config(settings: Settings, _: argparse.Namespace) -> int:
    """Print the effective configuration; main() has already refused an invalid one."""
    print("\n".join(describe(settings)))
    return 0


def _client(settings: Settings, args: argparse.Namespace) -> Any:
    from shared.client import MeteringClient

    url = args.url or f"http://127.0.0.1:{settings.http.port}"
    key = settings.http.api_key.get_secret_value() if settings.http.api_key else None
    return MeteringClient(url, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metering", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole pipeline in the foreground").set_defaults(func=cmd_up)
    sub.add_parser("demo", help="run the pipeline on a demo catalog and print invoices").set_defaults(func=cmd_demo)
    sub.add_parser("ingest", help="run the ingest HTTP service").set_defaults(func=cmd_ingest)
    sub.add_parser("aggregator", help="run one Faust aggregator worker").set_defaults(func=cmd_aggregator)
    sub.add_parser("rater", help="run the rater").set_defaults(func=cmd_rater)
    kafka = sub.add_parser("kafka", help="fetch or run the local Kafka broker")
    kafka.add_argument("action", choices=["fetch", "start"])
    kafka.add_argument("--port", type=int, default=9092)
    kafka.set_defaults(func=cmd_kafka)
    catalog = sub.add_parser("catalog", help="apply a catalog file (YAML or JSON)")
    catalog.add_argument("action", choices=["apply"])
    catalog.add_argument("file")
    catalog.set_defaults(func=cmd_catalog)
    sub.add_parser("topics", help="create the pipeline's Kafka topics (idempotent)").set_defaults(func=cmd_topics)
    sub.add_parser("migrate", help="apply ClickHouse migrations").set_defaults(func=cmd_migrate)
    send = sub.add_parser("send", help="send measurements from a JSON-lines file to the ingest API")
    send.add_argument("file", help="one measurement JSON object per line ('-' for stdin)")
    send.add_argument("--batch-size", type=int, default=1000)
    send.add_argument("--concurrency", type=int, default=4,
                      help="batches in flight at once, over kept-alive connections (default 4)")
    send.add_argument("--url", default=None, help="ingest API base URL (default: http://127.0.0.1:$METERING_HTTP_PORT)")
    send.set_defaults(func=cmd_send)
    invoice = sub.add_parser("invoice", help="invoice tools")
    invoice.add_argument("action", choices=["preview"])
    invoice.add_argument("--customer", required=True)
    invoice.add_argument("--url", default=None, help="ingest API base URL")
    invoice.set_defaults(func=cmd_invoice)
    sub.add_parser(
        "check-config", help="print the configuration from the environment (secrets masked), or every error in it"
    ).set_defaults(func=cmd_check_config)
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        settings = Settings()
    except ValidationError as error:
        found = problems(error)
        print(f"invalid configuration ({len(found)} {'error' if len(found) == 1 else 'errors'}):", file=sys.stderr)
        for problem in found:
            print(f"  {problem}", file=sys.stderr)
        return 2
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
