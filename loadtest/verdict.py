"""What a load run measured and whether it passed.

It passes when no response was a 5xx or an error, every request got an answer, and the database holds
exactly the writes the server acknowledged: each acknowledged id once, no row the clients were not told
about (a write answered with an error but kept anyway), and as many new rows as acknowledgements.
Pure functions over the locust results file and the database's answer, so they are tested without load.
"""

import json
import math
from collections import Counter, defaultdict

# Every table the traffic writes to; an engagement is opened by each acknowledged purchase.
WRITE_TABLES = ("customer", "purchase", "engagement", "event", "note")
SAMPLE = 5


def read_results(path):
    """(requests, acknowledgements) from the JSON-lines file the locustfile wrote."""
    requests, acks = [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            (requests if record["t"] == "request" else acks).append(record)
    return requests, acks


def percentile_ms(values, q):
    """Nearest-rank percentile (values are milliseconds already)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _round(ms):
    return None if ms is None else round(ms, 1)


def _latency(requests, seconds):
    times = [r["ms"] for r in requests]
    return {
        "requests": len(requests),
        "rate": round(len(requests) / seconds, 2) if seconds else None,
        "p50_ms": _round(percentile_ms(times, 0.50)),
        "p95_ms": _round(percentile_ms(times, 0.95)),
        "statuses": dict(sorted(Counter(str(r["status"]) for r in requests).items())),
    }


def traffic(requests):
    """Overall and per-kind rate (over the span from the first request to the last answer), p50/p95, statuses."""
    if not requests:
        return {**_latency([], 0), "seconds": 0, "kinds": {}}
    start = min(r["start"] for r in requests)
    end = max(r["start"] + r["ms"] / 1000 for r in requests)
    seconds = end - start
    by_kind = defaultdict(list)
    for r in requests:
        by_kind[r["kind"]].append(r)
    kinds = {kind: _latency(rows, seconds) for kind, rows in sorted(by_kind.items())}
    return {**_latency(requests, seconds), "seconds": round(seconds, 2), "kinds": kinds}


def acknowledged(acks):
    """table -> list of ids answered 2xx (a list, so an id acknowledged twice shows)."""
    found = {table: [] for table in WRITE_TABLES}
    for ack in acks:
        found[ack["table"]] += ack["ids"]
    found["engagement"] = list(found["purchase"])
    return found


def compare_writes(acked, stored):
    """Per table: acknowledged ids against `stored` = {table: {"ids": set of run ids, "rows_added": int}}."""
    report = {}
    for table in WRITE_TABLES:
        ids, rows = set(acked[table]), stored[table]
        report[table] = {
            "acknowledged": len(acked[table]),
            "stored": len(rows["ids"]),
            "rows_added": rows["rows_added"],
            "missing": sorted(ids - rows["ids"])[:SAMPLE],
            "unexpected": sorted(rows["ids"] - ids)[:SAMPLE],
        }
    return report


def problems(summary, writes):
    """Why the run failed, one sentence each; empty when it passed."""
    found = []
    if not summary["requests"]:
        found.append("no request was made")
    bad = Counter()
    for kind, stats in summary["kinds"].items():
        for status, count in stats["statuses"].items():
            if status == "0" or int(status) >= 400:
                bad[(kind, status)] += count
    for (kind, status), count in sorted(bad.items()):
        what = "got no answer (connection error)" if status == "0" else f"answered {status}"
        found.append(f"{count} {kind} request(s) {what}")
    for table, row in writes.items():
        if not row["acknowledged"]:
            found.append(f"no {table} write was acknowledged, so none was checked")
        if row["missing"]:
            found.append(f"{table}: acknowledged but not stored, e.g. {row['missing']}")
        if row["unexpected"]:
            found.append(f"{table}: stored but never acknowledged, e.g. {row['unexpected']}")
        if not row["acknowledged"] == row["stored"] == row["rows_added"]:
            found.append(
                f"{table}: {row['acknowledged']} acknowledged, {row['stored']} stored with the run's ids, "
                f"{row['rows_added']} rows added"
            )
    return found
