"""Copy the measured tables in results/*.md into README.md between their markers (never typed by hand).

.venv/bin/python benchmarks/update_readme.py
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = {
    "accuracy": ROOT / "results" / "accuracy.md",
    "model-performance": ROOT / "results" / "model_performance.md",
    "training-trials": ROOT / "results" / "training_trials.md",
    "serving-performance": ROOT / "results" / "serving_performance.md",
    "backtest": ROOT / "results" / "backtest.md",
    "scale": ROOT / "results" / "scale.md",
}


def refresh(readme: str) -> str:
    for name, source in BLOCKS.items():
        body = (
            source.read_text().strip()
            if source.exists()
            else f"_not measured yet: run the command for {name}_"
        )
        # the block may be empty (a new one): its start and end markers then share one line break
        pattern = re.compile(rf"(<!-- {name}:start -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.DOTALL)
        readme = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), readme)
    return readme


if __name__ == "__main__":
    path = ROOT / "README.md"
    path.write_text(refresh(path.read_text()))
    print(f"refreshed {path.name} from {', '.join(p.name for p in BLOCKS.values() if p.exists())}")
