"""How (b)'s per-request cost grows with the routing table and the interaction model: prints only.

In one process, as bench/profile.py builds them: the dispatcher app from a
config (verification on, the dev CA trusted, request log and multiprocess
metrics as `serve` sets them up) answering the signed SpaceCountIntent
request through a real function process, with

  - 4 routes, then 1,000 routes (the other 996 on other hosts), and
  - the shipped interaction model, then one of 200 intents × 20 samples;

per-request CPU (µs, this process's `process_time`, steadier than wall time
on a shared machine) for each, in alternating rounds. Then the simulator's
time to match one utterance against each model.

Run: .venv/bin/python bench/growth.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fixtures import (
    ROOT,
    dispatch_config,
    production_like_process,
    request_caller,
    signed_request,
    spacecount_function,
)

from verification.devca import DevCA

MODELS = ROOT / "interaction_models"


def big_model(target: Path, intents: int = 200, samples: int = 20) -> Path:
    """The shipped skill package with `intents` more custom intents of `samples` samples each."""
    shutil.copytree(MODELS, target)
    for path in (target / "interactionModels" / "custom").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        language = data["interactionModel"]["languageModel"]
        for n in range(intents):
            words = f"topic{n}"
            language["intents"].append(
                {
                    "name": f"Generated{n}Intent",
                    "samples": [f"tell me about {words} number {k}" for k in range(samples)],
                }
            )
        path.write_text(json.dumps(data), encoding="utf-8")
    return target


def config_with(base: Path, routes: int, models: Path | None) -> Path:
    text = base.read_text(encoding="utf-8")
    extra = [f'\n[intents.Extra{n}Intent]\nhost = "extra{n}"\n' for n in range(routes - 4)]
    if models is not None:
        text = text.replace("[skill]\n", f'[skill]\ninteraction_models = "{models}"\n', 1)
    path = base.with_name(f"dispatch-{routes}-{'big' if models else 'shipped'}.toml")
    path.write_text(text + "".join(extra), encoding="utf-8")
    return path


def cpu_us(call: Callable[[], Any], requests: int) -> float:
    began = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - began) / requests * 1e6


def matching_us(models: Path | None, utterance: str, loops: int = 50) -> float:
    from funker_dispatch.devtools.simulator import load_interaction_model, match_utterance

    model = load_interaction_model("en-US", models)
    began = time.perf_counter()
    for _ in range(loops):
        match_utterance(model, utterance)
    return (time.perf_counter() - began) / loops * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="funker-growth-") as directory:
        tmp = Path(directory)
        os.environ["FUNKER_DISPATCH_HOME"] = str(tmp / "home")
        production_like_process(tmp)
        ca = DevCA.load_or_create(tmp / "home")
        big = big_model(tmp / "big-model")

        from skill.app import create_app
        from skill.settings import load_settings

        with spacecount_function() as function_port:
            base = dispatch_config(ca, tmp, function_port)
            cases = {
                "4 routes, shipped model": config_with(base, 4, None),
                "1000 routes, shipped model": config_with(base, 1000, None),
                "4 routes, 200 intents × 20 samples": config_with(base, 4, big),
                "1000 routes, 200 intents × 20 samples": config_with(base, 1000, big),
            }
            calls = {}
            for name, config in cases.items():
                app = create_app(load_settings(config, environ={}))
                calls[name] = app
            figures: dict[str, list[float]] = {name: [] for name in cases}
            for round_ in range(args.rounds):
                order = list(cases) if round_ % 2 == 0 else list(cases)[::-1]
                for name in order:
                    body, headers = signed_request(ca)  # stamped now: inside the 150 s
                    call = request_caller(calls[name], body, headers)
                    call()  # warm
                    figures[name].append(cpu_us(call, args.requests))
    first = statistics.median(figures["4 routes, shipped model"])
    print(f"\nper-request CPU, median of {args.rounds} rounds × {args.requests} requests")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"  {name:40} {median:8.0f} µs   {median / first:5.2f} × the first")
    print("\nsimulator: matching one utterance (en-US)")
    for label, models, utterance in (
        ("shipped model", None, "how many people are in space"),
        (
            "200 intents × 20 samples",
            big_model(Path(tempfile.mkdtemp()) / "m"),
            "tell me about topic199 number 19",
        ),
    ):
        print(f"  {label:40} {matching_us(models, utterance):8.0f} µs")


if __name__ == "__main__":
    main()
