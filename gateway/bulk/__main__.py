"""`python -m gateway.bulk SOURCE --out DIR [--endpoint URL]`: classify a whole collection.

Exit status: 0 when every image has a result or a recorded failure (and the outputs are written); 2 for a
usage error; 3 when the gateway could not be reached or kept failing past the retries; 4 when DIR (or the
ledger in it) cannot be written or read; 5 when SOURCE cannot be listed; 6 when `--merge` finds shards
without results yet; 143 when stopped by SIGTERM (everything finished is in the ledger). The reason is
printed on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from gateway.bulk import deployments, job, s3, sources
from gateway.bulk.catalog import OptionError, parse_timezone
from gateway.bulk.client import GatewayUnavailable
from gateway.bulk.ledger import LedgerError
from gateway.bulk.progress import Reporter
from gateway.bulk.store import StoreError, open_store

MiB = 1024 * 1024


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway.bulk",
        description=(
            "Classify a folder, a list file or an s3:// prefix through the gateway's POST /predict/batch,"
            " resumably, into predictions.csv, megadetector.json and a Camera Trap Data Package."
        ),
        epilog=(
            "Run the same command again after an interruption: it continues where it stopped. Exit status:"
            " 0 done, 2 usage, 3 gateway unreachable, 4 output unwritable, 5 source unreadable,"
            " 6 merge incomplete, 143 stopped by SIGTERM."
        ),
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="a folder (recursive), a list file of paths/URLs, or s3://bucket/prefix",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder or s3://bucket/prefix")
    p.add_argument("--endpoint", default="http://localhost:9696", help="gateway base URL (%(default)s)")
    g = p.add_argument_group("batching")
    g.add_argument(
        "--batch-size",
        type=_positive_int,
        default=32,
        help="images per request, at most the gateway's MAX_BATCH_SIZE (%(default)s)",
    )
    g.add_argument(
        "--max-batch-bytes",
        type=_positive_int,
        default=16 * MiB,
        help="bytes of images per request (%(default)s)",
    )
    g.add_argument(
        "--max-image-bytes",
        type=_positive_int,
        default=16 * MiB,
        help="larger files are recorded as failed (%(default)s)",
    )
    g.add_argument("--concurrency", type=_positive_int, default=4, help="batches in flight (%(default)s)")
    g.add_argument("--timeout", type=_positive_float, default=120.0, help="seconds per request (%(default)s)")
    g.add_argument(
        "--retry-for",
        type=_positive_float,
        default=300.0,
        help="seconds to keep retrying an unreachable gateway (%(default)s)",
    )
    o = p.add_argument_group("outputs")
    o.add_argument(
        "--event-gap", type=float, default=60.0, help="max seconds between images of one event (%(default)s)"
    )
    o.add_argument(
        "--timezone",
        help="the cameras' clock: UTC, +02:00 or an IANA name like Africa/Abidjan (default: unknown, as UTC)",
    )
    o.add_argument(
        "--deployments", type=Path, metavar="FILE", help="CSV mapping folders to deployments (see README)"
    )
    o.add_argument(
        "--deployment-depth", type=_positive_int, help="deployments from the first N folder levels"
    )
    o.add_argument(
        "--metadata",
        type=Path,
        metavar="FILE",
        help="JSON overriding datapackage.json keys (project, contributors, licenses, ...)",
    )
    s = p.add_argument_group("S3 (also the standard AWS_* settings)")
    s.add_argument(
        "--s3-endpoint-url", help="an S3-compatible endpoint (default: AWS, or AWS_ENDPOINT_URL_S3)"
    )
    s.add_argument("--s3-region", help="region (default: AWS_DEFAULT_REGION / the AWS config)")
    s.add_argument(
        "--work-dir",
        type=Path,
        help="local folder for the ledger when --out is s3:// (default: the temp folder)",
    )
    s.add_argument(
        "--checkpoint-interval",
        type=_positive_float,
        default=60.0,
        help="seconds between ledger copies to an s3:// --out (%(default)s)",
    )
    k = p.add_argument_group("Kubernetes Indexed Job")
    k.add_argument(
        "--shard-count",
        type=_positive_int,
        default=1,
        help="split SOURCE into this many shards (%(default)s)",
    )
    k.add_argument(
        "--shard-index",
        type=int,
        default=None,
        help="this run's shard, 0-based (default: $JOB_COMPLETION_INDEX)",
    )
    k.add_argument("--merge", action="store_true", help="only merge the shards' results into the outputs")
    k.add_argument(
        "--merge-when-complete", action="store_true", help="after this shard, merge if every shard is done"
    )
    r = p.add_argument_group("progress")
    r.add_argument(
        "--progress",
        choices=("auto", "bar", "lines"),
        default="auto",
        help="bar on a terminal, lines otherwise (%(default)s)",
    )
    r.add_argument(
        "--progress-interval",
        type=_positive_float,
        default=10.0,
        help="seconds between progress lines (%(default)s)",
    )
    return p


def config_from(args: argparse.Namespace, p: argparse.ArgumentParser) -> job.Config:
    index = args.shard_index
    if index is None:
        index = int(os.environ.get("JOB_COMPLETION_INDEX", "0") or 0)
    if not 0 <= index < args.shard_count:
        p.error(f"--shard-index must be in [0, {args.shard_count}), got {index}")
    try:
        parse_timezone(args.timezone)
        mapping = deployments.load_mapping(args.deployments) if args.deployments else deployments.Mapping()
        metadata = job.load_metadata(args.metadata)
    except (OptionError, deployments.MappingError, ValueError) as exc:
        p.error(str(exc))
    if args.event_gap < 0:
        p.error("--event-gap must not be negative")
    return job.Config(
        endpoint=args.endpoint,
        batch_size=args.batch_size,
        max_batch_bytes=args.max_batch_bytes,
        max_image_bytes=args.max_image_bytes,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        retry_for_s=args.retry_for,
        checkpoint_interval_s=args.checkpoint_interval,
        shard_index=index,
        shard_count=args.shard_count,
        work_dir=args.work_dir,
        event_gap_s=args.event_gap,
        timezone=args.timezone,
        mapping=mapping,
        depth=args.deployment_depth,
        metadata=metadata,
    )


def main(argv: list[str] | None = None, *, stream: TextIO | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    config = config_from(args, p)
    stream = stream or sys.stderr
    logging.basicConfig(
        level=logging.WARNING, stream=stream, format="bulk: %(levelname)s %(name)s: %(message)s"
    )
    interactive = args.progress == "bar" or (args.progress == "auto" and stream.isatty())
    reporter = Reporter(stream, interactive=interactive, interval_s=args.progress_interval)
    needs_s3 = args.source.startswith("s3://") or args.out.startswith("s3://")
    try:
        client = s3.make_client(args.s3_endpoint_url, args.s3_region) if needs_s3 else None
        source = sources.open_source(args.source, s3_client=client)
        store = open_store(args.out, s3_client=client)
        if args.merge:
            merged, message, outputs = job.merge(source, store, config)
            reporter.line(message)
            for path in outputs:
                reporter.line(f"wrote {path}")
            return job.EXIT_OK if merged else job.EXIT_INCOMPLETE
        summary = job.Run(source, store, config, reporter).execute()
        reporter.finish(summary)
        if args.merge_when_complete and config.shard_count > 1:
            merged, message, outputs = job.merge(source, store, config)
            reporter.line(
                message if merged else f"not merging yet: {message}; the last shard to finish merges"
            )
            for path in outputs:
                reporter.line(f"wrote {path}")
        return job.EXIT_OK
    except sources.SourceError as exc:
        reporter.line(f"error: {exc}")
        return job.EXIT_SOURCE
    except GatewayUnavailable as exc:
        reporter.line(f"error: {exc}; the ledger keeps what was done: run the same command again to resume")
        return job.EXIT_GATEWAY
    except (LedgerError, StoreError) as exc:
        reporter.line(f"error: {exc}")
        return job.EXIT_OUTPUT
    except job.Interrupted as exc:
        reporter.line(str(exc))
        return job.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
