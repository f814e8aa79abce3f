#!/usr/bin/env python3
"""The Python client the integration tests push with.

Pushes with prometheus_client's own functions, the way a batch job would:

  push     push_to_gateway      PUT    a counter (two series), a gauge,
                                       a histogram and a summary
  pushadd  pushadd_to_gateway   POST   one more gauge, py_extra_gauge = 7
  delete   delete_from_gateway  DELETE the group

Usage: py_push.py URL --job JOB [--instance py1] [--steps push,pushadd,delete]
                  [--compression gzip]

`_created` series are turned off so every value is known in advance.
Prints "<step>: ok" per step; any answer of 400 or above raises (exit 1).
"""
import argparse
import sys
import urllib.error

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Summary,
    delete_from_gateway,
    push_to_gateway,
    pushadd_to_gateway,
)


def main_registry():
    registry = CollectorRegistry()
    requests = Counter("py_requests", "Requests handled.", ["path"], registry=registry)
    requests.labels("/a").inc(3)
    requests.labels("/b").inc(5)
    Gauge("py_temperature_celsius", "A gauge.", registry=registry).set(21.5)
    latency = Histogram(
        "py_latency_seconds", "A histogram.", buckets=(0.1, 0.5, 1.0), registry=registry
    )
    for seconds in (0.05, 0.2, 0.7, 2.0):
        latency.observe(seconds)
    size = Summary("py_size_bytes", "A summary.", registry=registry)
    for size_bytes in (100, 200, 300):
        size.observe(size_bytes)
    return registry


def extra_registry():
    registry = CollectorRegistry()
    Gauge("py_extra_gauge", "Added by pushadd.", registry=registry).set(7)
    return registry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--job", required=True)
    parser.add_argument("--instance", default="py1")
    parser.add_argument("--steps", default="push")
    parser.add_argument("--compression", choices=["gzip"], default=None)
    args = parser.parse_args()

    prometheus_client.disable_created_metrics()
    grouping_key = {"instance": args.instance}
    for step in args.steps.split(","):
        try:
            run_step(step, args, grouping_key)
        except urllib.error.HTTPError as error:
            # The client raises on >= 400; show what the server said.
            body = error.read().decode("utf-8", errors="replace").strip()
            sys.exit(f"{step}: HTTP {error.code}: {body}")
        print(f"{step}: ok")


def run_step(step, args, grouping_key):
    if step == "push":
        push_to_gateway(
            args.url,
            job=args.job,
            registry=main_registry(),
            grouping_key=grouping_key,
            compression=args.compression,
        )
    elif step == "pushadd":
        pushadd_to_gateway(
            args.url,
            job=args.job,
            registry=extra_registry(),
            grouping_key=grouping_key,
            compression=args.compression,
        )
    elif step == "delete":
        delete_from_gateway(args.url, job=args.job, grouping_key=grouping_key)
    else:
        sys.exit(f"py_push: unknown step {step!r}")


if __name__ == "__main__":
    main()
