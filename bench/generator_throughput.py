"""Generator to the local sink: events per second (target: at least 100,000).

    .venv/bin/python -m bench.generator_throughput [--count 500000]
"""

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from generator.sinks import LocalSink
from generator.sources import Population, encode_events, synthetic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500_000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        sink = LocalSink(Path(folder), roll_events=10_000, roll_seconds=3_600)
        lines = encode_events(synthetic(Population.default(), rng), rng, malformed_fraction=0.01)
        cpu = time.process_time()
        started = time.perf_counter()
        for _, line in zip(range(args.count), lines):
            sink.write(line)
        sink.close()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        size = sum(f.stat().st_size for f in sink.files)
    print(f"generator -> local sink: {args.count:,} events in {len(sink.files)} files ({size / 1e6:.1f} MB)")
    print(f"   wall {wall:.2f} s = {args.count / wall:,.0f} events/s; CPU {cpu:.2f} s = {args.count / cpu:,.0f} events/s per core")
    print(f"   peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
