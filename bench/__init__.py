"""Benchmarks, by family: each module runs with `.venv/bin/python -m bench.<family> <subcommand> [options]` and prints
its figures (pipeline, model, scoring, stream, serve; `bench.scale` alone takes options, no subcommand). `--help` on a
module lists its subcommands. What they share is in bench/common.py."""
