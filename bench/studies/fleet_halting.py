"""Does a halt save tokens on a fleet?  ``python -m bench.studies.fleet_halting``.

Serves the default model as a fleet of one, and runs ``bench.eval`` against a front ponder over
it (``--upstream``) once per config: self-consistency of 8 with and without DeepConf online's
halt.  Each run's accuracy and the tokens the front billed are set beside the fleet's own count
of what its engine generated (``ponder_engine_generated_tokens_total``), which includes what a
halted sample's stream made before it closed; ``bench/results/q05-fleet-halting.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import httpx

from server.local import live_server

RESULTS = Path(__file__).resolve().parents[1] / "results"
CONFIGS = (
    "sc8=self_consistency,samples=8",
    "sc8-halt=self_consistency,samples=8,warmup=4,halt_keep=0.5",
)


def generated(fleet: str) -> float:
    """The fleet engine's tokens so far."""
    for line in httpx.get(f"{fleet}/metrics").text.splitlines():
        if line.startswith("ponder_engine_generated_tokens_total "):
            return float(line.split()[1])
    raise RuntimeError("the fleet exports no ponder_engine_generated_tokens_total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=12, help="GSM8K problems")
    args = parser.parse_args()
    flags = ["--gsm", "eng", "--limit", str(args.limit), "--seed", "1", "--temperature", "0.7"]
    flags += ["--max-tokens", "512", "--concurrency", "4"]
    rows = []
    with live_server(None) as fleet:
        for spec in CONFIGS:
            label = spec.split("=", 1)[0]
            before = generated(fleet)
            name = f"q05-fleet-{label}"
            command = [sys.executable, "-m", "bench.eval", "--name", name, "--fresh"]
            command += ["--upstream", fleet, "--config", spec, *flags]
            subprocess.run(command, check=True)
            spent = generated(fleet) - before
            [summary] = json.loads((RESULTS / f"{name}.json").read_text())["summary"]
            rows.append(
                {
                    "config": label,
                    "spec": spec,
                    "problems": summary["problems"],
                    "correct": summary["correct"],
                    "billed_tokens_per_problem": summary["generated_tokens"],
                    "fleet_tokens_per_problem": spent / summary["problems"],
                }
            )
    out = {
        "model": "qwen2.5-coder-0.5b-instruct (Q4_K_M, llama.cpp) on a ponder fleet of one, "
        "behind a front ponder",
        "machine": "2-core AMD EPYC VM (AVX2), front and fleet on the same cores",
        "date": datetime.date.today().isoformat(),
        "command": f"bench.eval --upstream FLEET {' '.join(flags)}, one config per run",
        "rows": rows,
    }
    (RESULTS / "q05-fleet-halting.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
