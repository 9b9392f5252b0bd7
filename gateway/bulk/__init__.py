"""Bulk classification: a whole collection through the gateway's POST /predict/batch, resumably.

`python -m gateway.bulk SOURCE --out DIR` (gateway/bulk/__main__.py). One job per module:

| module | does |
|---|---|
| `sources` | lists SOURCE (folder, list file, S3 prefix) as sorted items, reads them, shards, chunks |
| `s3` | the few boto3 calls (list, get, put) |
| `store` | writes outputs atomically to a folder or an S3 prefix |
| `ledger` | the append-only, fsynced record of every batch: resume and exactness |
| `metadata` | capture time (EXIF, with fallbacks), camera, size from the image header |
| `client` | POST /predict/batch with retries, Retry-After and per-image failures |
| `runner` | the concurrent read-send-record loop |
| `deployments` | deployments from the folder structure or a mapping file |
| `events` | event grouping and the event-level rule |
| `taxa` | the documented label -> taxon mapping |
| `catalog` | results joined into media, deployments and events (pure) |
| `predictions_csv`, `megadetector`, `camtrapdp` | the three outputs (pure: catalog in, bytes out) |
| `progress` | the progress bar or lines and the summary (the only terminal output) |
| `job` | one run from listing to outputs; the merge of an Indexed Job's shards |
"""
