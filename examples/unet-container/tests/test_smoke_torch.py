"""A short CPU training run of train.py on a tiny generated data set.

torch is required: ``./scripts/test`` runs these tests with a venv that has it. Without torch
the module fails to import, and the run reports an error (a skipped test would go unnoticed).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sagemaker_contract as sm  # noqa: E402
from sample_data import (CONTAINER_DIR, REPO_ROOT, TRAIN_PY, make_channel,  # noqa: E402
                         subprocess_env, write_hyperparameters)

try:
    import torch
except ImportError as e:
    raise ImportError(f"these tests need torch ({e}); run them with ./scripts/test, which "
                      f"installs it, or with a python that has torch") from e

METRIC_LINE = re.compile(r"^epoch=(\d+) train_loss=([0-9.eE+-]+) val_dice=([0-9.eE+-]+)$", re.M)


class TorchSmokeTest(unittest.TestCase):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.paths = sm.Paths(self.root)
        make_channel(self.root, "train", ["t1", "t2", "t3", "t4"], size=32, seed=1)
        make_channel(self.root, "validation", ["v1", "v2"], size=32, seed=2)

    def tearDown(self) -> None:
        self._tmp.cleanup()

    def train(self, epochs: int) -> subprocess.CompletedProcess:
        write_hyperparameters(self.root, {"epochs": str(epochs), "batch_size": "2",
                                          "learning_rate": "0.01", "image_size": "32"})
        env = subprocess_env(self.root)
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["OMP_NUM_THREADS"] = "1"
        proc = subprocess.run([sys.executable, str(TRAIN_PY), "train"], env=env,
                              capture_output=True, text=True, timeout=600)
        failure = self.paths.failure_file.read_text() if self.paths.failure_file.exists() else ""
        self.assertEqual(proc.returncode, 0, f"{failure}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def test_train_writes_model_checkpoints_and_metrics_then_resumes(self) -> None:
        proc = self.train(epochs=2)
        lines = METRIC_LINE.findall(proc.stdout)
        self.assertEqual([int(e) for e, _, _ in lines], [1, 2], proc.stdout)
        for _, loss, dice in lines:
            self.assertGreater(float(loss), 0.0)
            self.assertTrue(0.0 <= float(dice) <= 1.0)

        model_file = self.paths.model_dir / "model.pt"
        self.assertTrue(model_file.is_file())
        state = torch.load(model_file, map_location="cpu", weights_only=True)
        self.assertIn("head.weight", state)
        self.assertTrue((self.paths.model_dir / "model.json").is_file())
        self.assertEqual(sm.latest_checkpoint(self.paths)[0], 2)
        self.assertFalse(self.paths.failure_file.exists())

        # A second run with one more epoch resumes from the checkpoint and trains only epoch 3.
        proc = self.train(epochs=3)
        self.assertIn("resuming from checkpoint-epoch-0002.ckpt", proc.stdout)
        self.assertEqual([int(e) for e, _, _ in METRIC_LINE.findall(proc.stdout)], [3])
        self.assertEqual([e for e, _ in sm.list_checkpoints(self.paths)], [2, 3])

    def test_train_runs_as_code_mode_source_through_the_launcher(self) -> None:
        """``sagetrain train --source examples/unet-container`` on a plain PyTorch image: the
        folder arrives as the ``code`` channel and sagetrain's launcher runs ``train.py``."""
        import os
        import shutil

        code = self.root / "input" / "data" / "code"
        shutil.copytree(CONTAINER_DIR, code, ignore=shutil.ignore_patterns("tests", "__pycache__"))
        launcher = REPO_ROOT / "src" / "job" / "launcher.sh"
        shutil.copy(launcher, code / ".sagetrain-launcher.sh")
        write_hyperparameters(self.root, {"epochs": "1", "batch_size": "2",
                                          "learning_rate": "0.01", "image_size": "32"})
        env = subprocess_env(self.root)
        env.pop("PYTHONPATH")  # only the uploaded copy of the code
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env["CUDA_VISIBLE_DEVICES"] = ""
        env["OMP_NUM_THREADS"] = "1"
        proc = subprocess.run(["/bin/sh", str(code / ".sagetrain-launcher.sh"), "train.py"],
                              env=env, capture_output=True, text=True, timeout=600)
        failure = self.paths.failure_file.read_text() if self.paths.failure_file.exists() else ""
        self.assertEqual(proc.returncode, 0, f"{failure}\n{proc.stdout}\n{proc.stderr}")
        self.assertEqual([int(e) for e, _, _ in METRIC_LINE.findall(proc.stdout)], [1])
        self.assertTrue((self.paths.model_dir / "model.pt").is_file())


if __name__ == "__main__":
    unittest.main()
