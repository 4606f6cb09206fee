"""The LightGBM trees compiled to native code (lleaves): the same predictions, several times faster.

LightGBM walks its trees with a generic interpreter, about 100 ns per tree and row on this machine, so a
1,000-leg batch through a 570-tree model spent ~55 ms in the boosters. lleaves turns each booster's text
into machine code with LLVM: the same rows took ~15 ms, and the predictions equal LightGBM's to 1e-13.

Compiling is slow (about 80 s for those 570 trees), so it never blocks anything: a caller keeps predicting
with LightGBM, runs `start_compiler` (a separate, low-priority process: the compiler holds the GIL), and
then swaps in `compiled_regressor`, which checks the native code against LightGBM before it is used.
Objects are cached by content (booster text, lleaves and llvmlite versions, CPU), so a restart, a second
worker or the next model with the same trees loads them in milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from data_contracts.home import eta_home
from data_contracts.safe_io import write_atomic
from models.quantile import LightGBMQuantile

logger = logging.getLogger(__name__)
CACHE_ENV = "ETA_COMPILED_TREES_DIR"
CHECK_ROWS = 256  # rows the native code must reproduce before it is used
CHECK_TOLERANCE = 1e-9  # log-seconds; LightGBM and lleaves agree to ~1e-13


def cache_dir() -> Path:
    """Where compiled objects live: $ETA_COMPILED_TREES_DIR, else ETA_HOME/compiled-trees."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else eta_home() / "compiled-trees"


def _toolchain() -> str:
    """What a compiled object depends on besides the trees: library versions and the CPU it targets."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    return "|".join(
        [
            version("lleaves"),
            version("llvmlite"),
            llvm.get_host_cpu_name(),
            llvm.get_host_cpu_features().flatten(),
        ]
    )


def tree_texts(regressor: LightGBMQuantile) -> dict[float, str]:
    """Each booster's model text (LightGBM's own format), by quantile."""
    return {q: booster.model_to_string() for q, booster in regressor.boosters.items()}


def object_paths(texts: dict[float, str], directory: Path) -> dict[float, tuple[Path, Path]]:
    """(model text file, object file) per quantile, named by a hash of text and toolchain."""
    toolchain = _toolchain()
    paths = {}
    for q, text in texts.items():
        key = hashlib.sha256(f"{toolchain}\n{text}".encode()).hexdigest()[:32]
        paths[q] = (directory / f"{key}.txt", directory / f"{key}.o")
    return paths


def missing_objects(regressor: LightGBMQuantile, directory: Path | None = None) -> list[Path]:
    """Model text files (written here if needed) whose objects are not in the cache yet."""
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    texts = tree_texts(regressor)
    todo = []
    for q, (text_path, object_path) in object_paths(texts, directory).items():
        if not text_path.exists():
            write_atomic(text_path, lambda tmp, text=texts[q]: tmp.write_bytes(text.encode()))
        if not object_path.exists():
            todo.append(text_path)
    return todo


def compile_text_file(text_path: Path) -> Path:
    """Compile one model text file to the object beside it (`<key>.o`); a finished object is never rewritten."""
    import lleaves

    object_path = text_path.with_suffix(".o")
    if object_path.exists():
        return object_path
    tmp = text_path.with_name(f".{text_path.stem}.{os.getpid()}.o")
    lleaves.Model(model_file=str(text_path)).compile(cache=str(tmp))
    os.replace(tmp, object_path)  # readers see a whole object or none
    return object_path


def start_compiler(text_paths: list[Path], nice: int = 10) -> subprocess.Popen:
    """`python -m models.compiled FILE...` in a separate process at lower priority; the caller waits on it
    (and can kill it: a service that stops must not leave a compiler behind)."""
    return subprocess.Popen(
        [sys.executable, "-m", "models.compiled", *map(str, text_paths)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.nice(nice)) if nice and hasattr(os, "nice") else None,
    )


def wait_compiler(process: subprocess.Popen, timeout_s: float = 1800.0) -> None:
    """Raises RuntimeError with the compiler's last output if it failed or was stopped."""
    _, stderr = process.communicate(timeout=timeout_s)
    if process.returncode != 0:
        raise RuntimeError(f"compiling trees failed (exit {process.returncode}): {(stderr or '')[-2000:]}")


def compiled_regressor(
    regressor: LightGBMQuantile, directory: Path | None = None, check_rows: np.ndarray | None = None
) -> LightGBMQuantile:
    """A copy of `regressor` that predicts with the cached native code (the original is untouched).

    Raises FileNotFoundError if an object is not compiled yet, and RuntimeError if the native code does
    not reproduce LightGBM on `check_rows` (default: seeded random rows with missing values)."""
    import lleaves

    directory = directory or cache_dir()
    models = {}
    for q, (text_path, object_path) in object_paths(tree_texts(regressor), directory).items():
        if not object_path.exists():
            raise FileNotFoundError(f"no compiled trees for quantile {q} at {object_path}")
        model = lleaves.Model(model_file=str(text_path))
        model.compile(cache=str(object_path))  # loads the object: no compilation
        models[q] = model
    faster = replace(regressor, compiled=models)
    rows = check_rows if check_rows is not None else _check_rows(regressor)
    gap = float(np.max(np.abs(faster.predict(rows) - regressor.predict(rows))))
    if not gap <= CHECK_TOLERANCE:
        raise RuntimeError(f"compiled trees differ from LightGBM by {gap:.3g} on the check rows; not used")
    return faster


def compile_now(regressor: LightGBMQuantile, nice: int = 10) -> LightGBMQuantile:
    """Compile whatever the cache lacks, wait for it, and return the compiled copy (scripts and benchmarks;
    a service compiles in the background instead)."""
    todo = missing_objects(regressor)
    if todo:
        wait_compiler(start_compiler(todo, nice=nice))
    return compiled_regressor(regressor)


def _check_rows(regressor: LightGBMQuantile) -> np.ndarray:
    """Adversarial rows: every value is one of the trees' own split thresholds, a neighbour of one, or
    missing, so each comparison is exercised on both sides of its boundary."""
    rng = np.random.default_rng(0)
    names = regressor.boosters[0.5].feature_name()
    thresholds: dict[str, list[float]] = {name: [0.0] for name in names}
    for booster in regressor.boosters.values():
        for tree in booster.dump_model()["tree_info"]:  # LightGBM's own JSON: no pandas needed
            for feature, threshold in _splits(tree["tree_structure"]):
                thresholds[names[feature]].append(threshold)
    rows = np.empty((CHECK_ROWS, len(names)))
    for j, name in enumerate(names):
        values = np.asarray(thresholds[name])
        picked = rng.choice(values, CHECK_ROWS)
        rows[:, j] = picked + rng.choice([-1.0, 0.0, 1.0], CHECK_ROWS) * np.spacing(np.abs(picked) + 1.0)
    rows[rng.random(rows.shape) < 0.05] = np.nan
    return rows


def _splits(node: dict) -> list[tuple[int, float]]:
    """(feature index, threshold) of every numeric split under a node of `Booster.dump_model()`."""
    found, stack = [], [node]
    while stack:
        node = stack.pop()
        if "split_feature" not in node:
            continue  # a leaf
        if node.get("decision_type") == "<=":
            found.append((int(node["split_feature"]), float(node["threshold"])))
        stack += [node["left_child"], node["right_child"]]
    return found


def main(argv: list[str]) -> int:
    for path in argv:
        compile_text_file(Path(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
