"""A real S3-compatible server on 127.0.0.1 for tests: moto's server mode, from `.venv-s3`.

    with run_s3_server() as server:                  # skips the test when .venv-s3 is missing
        server.create_bucket("cams")
        server.upload_tree(folder, "cams", "site/")
        ...  # point boto3 (or `python -m gateway.bulk --s3-endpoint-url`) at server.endpoint

The server speaks the S3 REST API over HTTP (ListObjectsV2, GetObject, PutObject, ...), so the bulk code
under test runs its real boto3 client against it: nothing is mocked inside the process under test. Buckets
are filled by boto3 in a subprocess of `.venv-s3` (boto3 cannot live in .venv beside the kubernetes client).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.standin import HOST, free_port, terminate

REPO = Path(__file__).resolve().parents[2]
S3_PYTHON = REPO / ".venv-s3" / "bin" / "python"
# Any credentials do: moto accepts every key. Fixed values keep boto3 from looking further (no ~/.aws).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}

_CLIENT_SCRIPT = """
import json, sys
import boto3
spec = json.load(sys.stdin)
s3 = boto3.client("s3", endpoint_url=spec["endpoint"])
for action in spec["actions"]:
    if action["op"] == "bucket":
        s3.create_bucket(Bucket=action["bucket"])
    elif action["op"] == "put":
        with open(action["path"], "rb") as handle:
            s3.put_object(Bucket=action["bucket"], Key=action["key"], Body=handle.read())
    elif action["op"] == "get":
        body = s3.get_object(Bucket=action["bucket"], Key=action["key"])["Body"].read()
        with open(action["path"], "wb") as handle:
            handle.write(body)
    elif action["op"] == "list":
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=action["bucket"], Prefix=action["prefix"])
        keys = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
        print(json.dumps(keys))
"""


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def env(self) -> dict[str, str]:
        """Environment for a process that should use this server (boto3's standard settings)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def _client(self, actions: list[dict[str, str]]) -> str:
        done = subprocess.run(
            [str(S3_PYTHON), "-c", _CLIENT_SCRIPT],
            input=json.dumps({"endpoint": self.endpoint, "actions": actions}).encode(),
            env={**os.environ, **CREDENTIALS},
            capture_output=True,
            check=False,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"S3 client failed: {done.stderr.decode(errors='replace')[-2000:]}")
        return done.stdout.decode()

    def create_bucket(self, bucket: str) -> None:
        self._client([{"op": "bucket", "bucket": bucket}])

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> list[str]:
        actions = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = prefix + path.relative_to(folder).as_posix()
            actions.append({"op": "put", "bucket": bucket, "key": key, "path": str(path)})
        self._client(actions)
        return [action["key"] for action in actions]

    def download(self, bucket: str, key: str, path: Path) -> bytes:
        self._client([{"op": "get", "bucket": bucket, "key": key, "path": str(path)}])
        return path.read_bytes()

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = json.loads(self._client([{"op": "list", "bucket": bucket, "prefix": prefix}]))
        return keys

    def stop(self) -> int:
        return terminate(self.process, 10)


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=1) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def run_s3_server(startup_timeout: float = 60.0) -> Iterator[S3Server]:
    if not S3_PYTHON.exists():
        raise FileNotFoundError(f"{S3_PYTHON} missing: run `make venv` (make test does)")
    port = free_port()
    log_fd, log_name = tempfile.mkstemp(prefix="moto-", suffix=".log")
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            [str(S3_PYTHON), "-m", "moto.server", "-H", HOST, "-p", str(port)],
            env={**os.environ, **CREDENTIALS},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = S3Server(f"http://{HOST}:{port}", process, Path(log_name))
    try:
        deadline = time.monotonic() + startup_timeout
        while not _answers(server.endpoint):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start:\n{server.log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        server.log_path.unlink(missing_ok=True)
