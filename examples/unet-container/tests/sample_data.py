"""Shared test helpers (standard library only): paths and a tiny generated PNG data set."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Dict, Iterable, Optional

CONTAINER_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = CONTAINER_DIR.parent.parent
TRAIN_PY = CONTAINER_DIR / "train.py"
if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))

import pngio  # noqa: E402


def write_sample(images_dir: Path, masks_dir: Path, name: str, size: int, rng: random.Random) -> None:
    """A noisy RGB image with a few bright vertical "vessels", and their mask (0/255)."""
    columns = set(rng.sample(range(size), max(1, size // 8)))
    pixels = bytearray()
    mask = bytearray()
    for _y in range(size):
        for x in range(size):
            vessel = x in columns
            base = 200 if vessel else 40
            pixels += bytes(min(255, base + rng.randrange(40)) for _ in range(3))
            mask.append(255 if vessel else 0)
    images_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    pngio.write_png(images_dir / f"{name}.png", size, size, 3, bytes(pixels))
    pngio.write_png(masks_dir / f"{name}.png", size, size, 1, bytes(mask))


def make_channel(root: Path, channel: str, names: Iterable[str], size: int = 32, seed: int = 0) -> Path:
    rng = random.Random(seed)
    cdir = root / "input" / "data" / channel
    for name in names:
        write_sample(cdir / "images", cdir / "masks", name, size, rng)
    return cdir


def write_hyperparameters(root: Path, values: Dict[str, object]) -> Path:
    path = root / "input" / "config" / "hyperparameters.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def subprocess_env(root: Path, pythonpath: Optional[Iterable[Path]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["SM_ROOT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("TRAINING_JOB_NAME", None)
    parts = [str(p) for p in (pythonpath or [])] + [str(CONTAINER_DIR)]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
