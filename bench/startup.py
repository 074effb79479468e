"""Start-up (issue 18, item 6): what a command costs before it does anything, in one run.

Each figure is a separate subprocess, timed from spawn to exit (or to the first `/readyz`
200), best of several rounds; the rounds are interleaved (every command once per round) so
the shared machine's load falls on all of them alike. Reported beside the bare interpreter
(`python -c pass`) of the same run, as ratios:

- `salesbot --help`, `salesbot check --help` (argparse only: nothing of the product should
  load) and `salesbot score TEXT --policy seed` (a real command: settings, the seed policy,
  the notebook's scorer);
- `salesbot serve` on 127.0.0.1 (`--port 0`, a fresh SQLite file, embedded defaults: the
  local playground) until `/readyz` answers 200, beside a bare aiohttp application started
  the same way until its first 200 (the framework's own start).

Run alone with `python -m bench.startup`; `make bench` includes it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 11
SERVE_ROUNDS = 5
TEXT = "We have a $5000 budget, I am the CTO and we want to start next month"
READY_TIMEOUT_S = 120.0

# A bare aiohttp application on a free loopback port, printing its address once it listens
# (as `salesbot serve` does), answering 200 on /readyz.
BARE_AIOHTTP = """
import asyncio, sys
from aiohttp import web

async def ready(request):
    return web.json_response({"status": "ready"})

async def main():
    app = web.Application()
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _salesbot() -> list[str]:
    """The console script users run, beside this interpreter; `python -m bot` without it."""
    script = Path(sys.executable).with_name("salesbot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


LOCALE = ("LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES")
"""Kept from the caller: with a locale set, argparse looks up a translation catalogue for
each of its own strings (≈ 4 ms more per `--help` here), as it does for a user."""


def _env(directory: Path) -> dict[str, str]:
    """Nothing of the caller's configuration but its locale: embedded defaults, a database
    of our own."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **{name: os.environ[name] for name in LOCALE if name in os.environ},
        "SALESBOT_ENV_FILE": os.devnull,
        "SALESBOT_DB": str(directory / "startup.db"),
    }


def _run_s(argv: Sequence[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def _ready_s(argv: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(spawn → the listening line, spawn → the first 200 from /readyz), then SIGTERM."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        listening = time.perf_counter()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        if match is None:
            raise RuntimeError(f"{argv[0]} did not start: {first!r}")
        url = f"http://127.0.0.1:{match.group(1)}/readyz"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=READY_TIMEOUT_S) as response:
                    if response.status == 200:
                        break
            except urllib.error.HTTPError:  # 503 until the store and worker are up
                pass
            if time.perf_counter() - start > READY_TIMEOUT_S:
                raise RuntimeError(f"{url} never answered 200")
            time.sleep(0.002)
        ready = time.perf_counter()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return listening - start, ready - start


def _best(
    runs: dict[str, Callable[[], float]], rounds: int, *, warm: bool = True
) -> dict[str, float]:
    """Best time of each run; every run once per round, in turn, after one untimed warm-up
    (bytecode caches written, files in the page cache)."""
    if warm:
        for run in runs.values():
            run()
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            best[name] = min(best[name], run())
    return best


def measure(
    rounds: int = ROUNDS, serve_rounds: int = SERVE_ROUNDS, baseline: Path | None = None
) -> dict[str, float]:
    """The figures, in milliseconds. With `baseline` (the source tree of another release,
    e.g. a `git archive` of it), the same commands run as `python -m bot` from that tree
    and from this one too (`baseline_*`, `module_*`), interleaved with the rest."""
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        env = _env(directory)
        trees: dict[str, tuple[list[str], dict[str, str]]] = {"salesbot": (_salesbot(), env)}
        if baseline is not None:
            module = [sys.executable, "-m", "bot"]
            trees["module"] = (module, {**env, "PYTHONPATH": str(ROOT)})
            trees["baseline"] = (module, {**env, "PYTHONPATH": str(baseline.resolve())})

        def timed(argv: list[str], env: dict[str, str]) -> Callable[[], float]:
            return lambda: _run_s(argv, env, directory)

        bare = timed([sys.executable, "-c", "pass"], env)
        runs = {"python_c_pass": bare}
        for tree, (command, tree_env) in trees.items():
            runs[f"{tree}_help"] = timed([*command, "--help"], tree_env)
            runs[f"{tree}_check_help"] = timed([*command, "check", "--help"], tree_env)
            runs[f"{tree}_score_seed"] = timed(
                [*command, "score", TEXT, "--policy", "seed"], tree_env
            )
        for key, seconds in _best(runs, rounds).items():
            results[f"startup_{key}_ms"] = 1000 * seconds

        listening: dict[str, float] = {}

        def served(key: str, argv: list[str], env: dict[str, str]) -> Callable[[], float]:
            def run() -> float:
                with tempfile.TemporaryDirectory(dir=directory) as fresh:
                    db_env = {**env, "SALESBOT_DB": str(Path(fresh) / "serve.db")}
                    heard, ready = _ready_s(argv, db_env, directory)
                listening[key] = min(listening.get(key, float("inf")), heard)
                return ready

            return run

        serving = {
            "python_c_pass": bare,
            "bare_aiohttp": served("bare_aiohttp", [sys.executable, "-c", BARE_AIOHTTP], env),
        }
        for tree, (command, tree_env) in trees.items():
            serve = [*command, "serve", "--host", "127.0.0.1", "--port", "0"]
            serving[f"{tree}_serve"] = served(f"{tree}_serve", serve, tree_env)
        ready = _best(serving, serve_rounds)
    results["startup_serve_round_python_c_pass_ms"] = 1000 * ready.pop("python_c_pass")
    for key, seconds in ready.items():
        results[f"startup_{key}_listening_ms"] = 1000 * listening[key]
        results[f"startup_{key}_ready_ms"] = 1000 * seconds
    return results


def ratios(results: dict[str, float]) -> dict[str, float]:
    """Each command against the bare interpreter of the same run (the target: `--help` ≤ 2)."""
    bare = results["startup_python_c_pass_ms"]
    serve_bare = results["startup_serve_round_python_c_pass_ms"]
    return {
        "startup_help_vs_python_c_pass": results["startup_salesbot_help_ms"] / bare,
        "startup_check_help_vs_python_c_pass": results["startup_salesbot_check_help_ms"] / bare,
        "startup_score_seed_vs_python_c_pass": results["startup_salesbot_score_seed_ms"] / bare,
        "startup_serve_ready_vs_python_c_pass": results["startup_salesbot_serve_ready_ms"]
        / serve_bare,
        "startup_serve_ready_vs_bare_aiohttp_ready": results["startup_salesbot_serve_ready_ms"]
        / results["startup_bare_aiohttp_ready_ms"],
        **{
            f"startup_{figure}_baseline_vs_this_tree": results[f"startup_baseline_{figure}_ms"]
            / results[f"startup_module_{figure}_ms"]
            for figure in ("help", "check_help", "score_seed", "serve_ready")
            if f"startup_baseline_{figure}_ms" in results
        },
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.startup")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--serve-rounds", type=int, default=SERVE_ROUNDS)
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR", help="another release's source tree to compare"
    )
    options = parser.parse_args()
    figures = measure(options.rounds, options.serve_rounds, options.baseline)
    for key, value in {**figures, **ratios(figures)}.items():
        print(f"{key:48} {value:12,.4g}")
