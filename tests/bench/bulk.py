"""The bulk benchmark (`make bench`): `python -m gateway.bulk` against a sequential /predict loop.

    .venv/bin/python -m tests.bench.bulk --gateway-python .venv-gateway/bin/python \\
        --model-base-path build/models/species_model --out build/bench [--scale 0.5]

It starts the TF Serving stand-in (demo model) and the gateway as real processes on 127.0.0.1 and writes a
folder of camera-sized JPEGs: the real 10-image RECONYX burst from ../shared (2048x1440, when present) and
generated 1080p and 12 MP photos. Then, alternating in the same run (median of `--rounds`):

- loop: one POST /predict per image, one after the other (the seed's way, multipart `file`);
- bulk: `python -m gateway.bulk FOLDER --out DIR` (batches of 32 over /predict/batch, 4 in flight).

For each: images/s, and CPU-seconds per image of the gateway process and of the stand-in (from
/proc/<pid>/stat, so the client's own work is not counted). Everything shares the machine's cores, so the
absolute rates are a lower bound of separate pods; the ratio is the point. Results go to `<out>/bulk.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bench.gateway import camera_trap_jpeg, run_gateway_process
from tests.support.standin import start_standin

REPO = Path(__file__).resolve().parents[2]
BURST = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")) / "data" / "camera-trap-burst"
# name: (size, files, distinct photos). Copies of a few generated photos: the content of a file does not
# change its cost (nothing is cached), and generating 12 MP photos is slow.
GENERATED = {"1080p": ((1920, 1080), 150, 15), "12MP": ((4000, 3000), 20, 4)}
TICKS = os.sysconf("SC_CLK_TCK")
# The EKS node type of eksctl-cluster.yaml and its on-demand price in us-east-1, per hour. An assumption
# written down to be checked (AWS changes prices; other regions differ): https://aws.amazon.com/ec2/pricing/
NODE_TYPE = "c7i.xlarge"
NODE_VCPUS = 4
NODE_PRICE_USD_PER_HOUR = 0.1785


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def make_folder(folder: Path, scale: float) -> list[Path]:
    paths = []
    if BURST.is_dir():
        for source in sorted(BURST.glob("*.JPG")):
            target = folder / "burst" / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            paths.append(target)
    seed = 0
    for name, ((width, height), count, distinct) in GENERATED.items():
        photos = []
        for _ in range(distinct):
            seed += 1
            photos.append(camera_trap_jpeg(width, height, seed))
        for index in range(max(2, round(count * scale))):
            target = folder / name / f"IMG_{index:04d}.JPG"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(photos[index % distinct])
            paths.append(target)
    return paths


def run_loop(url: str, paths: list[Path]) -> float:
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for path in paths:
            response = client.post("/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")})
            response.raise_for_status()
    return time.perf_counter() - started


def run_bulk(gateway_python: Path, url: str, folder: Path) -> float:
    out = Path(tempfile.mkdtemp(prefix="bench-bulk-"))
    try:
        started = time.perf_counter()
        subprocess.run(
            [str(gateway_python), "-m", "gateway.bulk", str(folder), "--out", str(out), "--endpoint", url],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, run: Any, count: int, gateway_pid: int, serving_pid: int) -> dict[str, float]:
    """One timed pass; the client's CPU is this process's for the loop, the CLI subprocess's for bulk."""
    gateway_before, serving_before = cpu_seconds(gateway_pid), cpu_seconds(serving_pid)
    client_before = children_cpu_seconds() if mode == "bulk" else time.process_time()
    seconds = run()
    client = (children_cpu_seconds() if mode == "bulk" else time.process_time()) - client_before
    return {
        "client_cpu_s_per_image": round(client / count, 5),
        "seconds": round(seconds, 3),
        "images_per_s": round(count / seconds, 2),
        "gateway_cpu_s_per_image": round((cpu_seconds(gateway_pid) - gateway_before) / count, 5),
        "serving_cpu_s_per_image": round((cpu_seconds(serving_pid) - serving_before) / count, 5),
    }


def cost(cpu_s_per_image: float, images: int = 1_000_000) -> dict[str, float]:
    """node-hours = images x CPU-s per image / (vCPUs per node x 3600 s/h), nodes fully used."""
    node_hours = images * cpu_s_per_image / (NODE_VCPUS * 3600)
    return {"node_hours": round(node_hours, 2), "usd": round(node_hours * NODE_PRICE_USD_PER_HOUR, 2)}


def report(results: dict[str, Any]) -> str:
    loop, bulk = results["loop"], results["bulk"]
    gw, total, everything = (results["cost"][key] for key in ("gateway", "total", "with_client"))
    lines = [
        f"bulk benchmark: {results['images']} images ({results['mix']}),"
        f" median of {results['rounds']} rounds",
        "",
        "| path | images/s | gateway CPU-s/image | stand-in CPU-s/image | client CPU-s/image |",
        "|---|---|---|---|---|",
    ]
    for name, row in (("sequential POST /predict", loop), ("python -m gateway.bulk", bulk)):
        lines.append(
            f"| {name} | {row['images_per_s']} | {row['gateway_cpu_s_per_image']} |"
            f" {row['serving_cpu_s_per_image']} | {row['client_cpu_s_per_image']} |"
        )
    lines += [
        "",
        f"bulk vs loop: {results['speedup']}x images/s (target >= 2x);"
        f" per round: {results['speedup_per_round']}",
        f"1M images on {NODE_TYPE} ({NODE_VCPUS} vCPU, ${NODE_PRICE_USD_PER_HOUR}/h assumed):",
        f"  gateway: {gw['node_hours']} node-hours, ${gw['usd']}",
        f"  gateway + serving: {total['node_hours']} node-hours, ${total['usd']}",
        f"  gateway + serving + bulk client: {everything['node_hours']} node-hours, ${everything['usd']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bulk", description=__doc__.splitlines()[0])
    parser.add_argument("--gateway-python", type=Path, required=True)
    parser.add_argument("--model-base-path", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the generated image counts")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each path (median kept)")
    args = parser.parse_args(argv)
    if not args.gateway_python.exists():
        parser.error(f"{args.gateway_python} not found: run `make venv`")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-collection-") as temp:
        folder = Path(temp)
        print("making camera-sized JPEGs ...", flush=True)
        paths = make_folder(folder, args.scale)
        mix = ", ".join(
            f"{sum(1 for p in paths if p.parent.name == name)} {name}" for name in ("burst", *GENERATED)
        )
        standin = start_standin(args.model_base_path, log_dir=args.out)
        try:
            standin.wait_until_serving()
            with run_gateway_process(args.gateway_python, standin.address) as gateway:
                pid, serving_pid = gateway.process.pid, standin.process.pid
                run_loop(gateway.base_url, paths[:4])  # warm-up: connections, decode threads, TF kernels
                rounds: dict[str, list[dict[str, float]]] = {"loop": [], "bulk": []}
                for number in range(args.rounds):
                    print(f"round {number + 1}: loop, bulk ...", flush=True)
                    rounds["loop"].append(
                        measure(
                            "loop", lambda: run_loop(gateway.base_url, paths), len(paths), pid, serving_pid
                        )
                    )
                    rounds["bulk"].append(
                        measure(
                            "bulk",
                            lambda: run_bulk(args.gateway_python, gateway.base_url, folder),
                            len(paths),
                            pid,
                            serving_pid,
                        )
                    )
        finally:
            standin.stop()
    # The median round of each path: the machine is shared, so single rounds swing widely.
    best = {
        mode: sorted(runs, key=lambda row: row["images_per_s"])[len(runs) // 2]
        for mode, runs in rounds.items()
    }
    total_cpu = best["bulk"]["gateway_cpu_s_per_image"] + best["bulk"]["serving_cpu_s_per_image"]
    results: dict[str, Any] = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "images": len(paths),
        "mix": mix,
        "rounds": args.rounds,
        "loop": best["loop"],
        "bulk": best["bulk"],
        "all_rounds": rounds,
        "speedup": round(best["bulk"]["images_per_s"] / best["loop"]["images_per_s"], 2),
        "speedup_per_round": [
            round(bulk["images_per_s"] / loop["images_per_s"], 2)
            for loop, bulk in zip(rounds["loop"], rounds["bulk"], strict=True)
        ],
        "node": {"type": NODE_TYPE, "vcpus": NODE_VCPUS, "usd_per_hour_assumed": NODE_PRICE_USD_PER_HOUR},
        "cost": {
            "gateway": cost(best["bulk"]["gateway_cpu_s_per_image"]),
            "total": cost(total_cpu),
            "with_client": cost(total_cpu + best["bulk"]["client_cpu_s_per_image"]),
        },
    }
    (args.out / "bulk.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(report(results))
    print(f"\nwrote {args.out / 'bulk.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
