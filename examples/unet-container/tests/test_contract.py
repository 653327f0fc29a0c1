"""Tests of the SageMaker contract part (standard library only; torch is not needed).

Run from the repository root:  python3 -m unittest discover -s examples/unet-container/tests -v
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sagemaker_contract as sm  # noqa: E402
from sample_data import (  # noqa: E402
    REPO_ROOT, TRAIN_PY, make_channel, subprocess_env, write_hyperparameters)

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None


class TempRoot(unittest.TestCase):
    """Each test gets an empty SM_ROOT."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.root = Path(self._tmp.name)
        self.paths = sm.Paths(self.root)

    def tearDown(self) -> None:
        self._tmp.cleanup()


class PathsTest(unittest.TestCase):
    def test_default_root_is_opt_ml(self) -> None:
        paths = sm.Paths.from_env({})
        self.assertEqual(paths.root, Path("/opt/ml"))
        self.assertEqual(paths.hyperparameters_file, Path("/opt/ml/input/config/hyperparameters.json"))
        self.assertEqual(paths.channel_dir("train"), Path("/opt/ml/input/data/train"))
        self.assertEqual(paths.model_dir, Path("/opt/ml/model"))
        self.assertEqual(paths.failure_file, Path("/opt/ml/output/failure"))
        self.assertEqual(paths.checkpoint_dir, Path("/opt/ml/checkpoints"))

    def test_sm_root_overrides(self) -> None:
        paths = sm.Paths.from_env({"SM_ROOT": "/tmp/ml"})
        self.assertEqual(paths.model_dir, Path("/tmp/ml/model"))


class ClusterTest(TempRoot):
    """resourceconfig.json and the GPU count -> ranks and the rendezvous."""

    def cluster(self, hosts, current, gpus=0, **env):
        return sm.cluster_from_config({"current_host": current, "hosts": hosts}, gpus, env)

    def test_no_resource_config_is_one_local_process(self) -> None:
        self.assertIsNone(sm.read_resource_config(self.paths))
        c = sm.cluster_from_config(None, 0, {})
        self.assertEqual((c.hosts, c.world_size, c.rank(0)), (("localhost",), 1, 0))
        self.assertEqual((c.master_addr, c.master_port), ("127.0.0.1", 29500))

    def test_one_host_one_gpu_is_one_process(self) -> None:
        c = self.cluster(["algo-1"], "algo-1", gpus=1)
        self.assertEqual((c.processes_per_host, c.world_size), (1, 1))

    def test_hosts_are_sorted_and_the_first_is_the_rendezvous(self) -> None:
        c = self.cluster(["algo-2", "algo-1"], "algo-2", gpus=4)
        self.assertEqual(c.hosts, ("algo-1", "algo-2"))
        self.assertEqual((c.master_addr, c.master_port), ("algo-1", 29500))
        self.assertEqual((c.host_rank, c.processes_per_host, c.world_size), (1, 4, 8))
        self.assertEqual([c.rank(i) for i in range(4)], [4, 5, 6, 7])
        self.assertEqual(self.cluster(["algo-2", "algo-1"], "algo-1").rank(0), 0)

    def test_cpu_hosts_run_one_process_each(self) -> None:
        c = self.cluster(["algo-1", "algo-2"], "algo-2", gpus=0)
        self.assertEqual((c.processes_per_host, c.world_size, c.rank(0)), (1, 2, 1))

    def test_environment_overrides(self) -> None:
        c = self.cluster(["algo-1", "algo-2"], "algo-1", gpus=0, SAGETRAIN_MASTER_ADDR="127.0.0.1",
                         MASTER_ADDR="10.0.0.1", MASTER_PORT="4000",
                         SAGETRAIN_PROCESSES_PER_HOST="3")
        self.assertEqual((c.master_addr, c.master_port, c.world_size), ("127.0.0.1", 4000, 6))
        c = self.cluster(["algo-1", "algo-2"], "algo-1", MASTER_ADDR="10.0.0.1")
        self.assertEqual(c.master_addr, "10.0.0.1")

    def test_invalid_configurations_are_contract_errors(self) -> None:
        cases = [
            ({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]}, {}, "'algo-3' is not one"),
            ({"current_host": "algo-1", "hosts": []}, {}, "non-empty list"),
            ({"current_host": "algo-1", "hosts": ["algo-1"]}, {"MASTER_PORT": "http"},
             "not a port number"),
            ({"current_host": "algo-1", "hosts": ["algo-1"]},
             {"SAGETRAIN_PROCESSES_PER_HOST": "0"}, "SAGETRAIN_PROCESSES_PER_HOST"),
        ]
        for resources, env, message in cases:
            with self.assertRaisesRegex(sm.ContractError, re.escape(message)):
                sm.cluster_from_config(resources, 0, env)
        with self.assertRaisesRegex(sm.ContractError, "only 2 GPU"):
            self.cluster(["algo-1"], "algo-1", gpus=2, SAGETRAIN_PROCESSES_PER_HOST="4")

    def test_channel_distribution(self) -> None:
        self.assertEqual(sm.channel_distribution(self.paths, "train"), "FullyReplicated")
        self.paths.config_dir.mkdir(parents=True)
        self.paths.input_data_config_file.write_text(json.dumps({
            "train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"},
            "validation": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"},
        }))
        self.assertEqual(sm.channel_distribution(self.paths, "train"), "ShardedByS3Key")
        self.assertEqual(sm.channel_distribution(self.paths, "validation"), "FullyReplicated")
        self.assertEqual(sm.channel_distribution(self.paths, "other"), "FullyReplicated")


class HyperparameterTest(TempRoot):
    def parse(self, raw: dict) -> sm.Hyperparameters:
        with contextlib.redirect_stderr(io.StringIO()):
            return sm.parse_hyperparameters(raw)

    def test_defaults_when_file_missing(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            hp = sm.load_hyperparameters(self.paths)
        self.assertEqual(hp, sm.Hyperparameters(epochs=10, batch_size=8, learning_rate=1e-3,
                                                image_size=256))
        self.assertIn("not found", err.getvalue())

    def test_defaults_when_empty(self) -> None:
        write_hyperparameters(self.root, {})
        self.assertEqual(sm.load_hyperparameters(self.paths), sm.Hyperparameters())

    def test_string_values_are_parsed(self) -> None:
        write_hyperparameters(self.root, {"epochs": "50", "batch_size": "4",
                                          "learning_rate": "0.0001", "image_size": "512"})
        hp = sm.load_hyperparameters(self.paths)
        self.assertEqual(hp.epochs, 50)
        self.assertIsInstance(hp.epochs, int)
        self.assertEqual(hp.batch_size, 4)
        self.assertEqual(hp.learning_rate, 1e-4)
        self.assertIsInstance(hp.learning_rate, float)
        self.assertEqual(hp.image_size, 512)
        self.assertEqual(self.parse({"base_channels": "4"}).base_channels, 4)

    def test_float_forms(self) -> None:
        for text, value in [("1e-05", 1e-5), ("0.00001", 1e-5), (" 3E-4 ", 3e-4), ("1", 1.0)]:
            self.assertEqual(self.parse({"learning_rate": text}).learning_rate, value, text)

    def test_partial_values_keep_other_defaults(self) -> None:
        hp = self.parse({"epochs": "3"})
        self.assertEqual((hp.epochs, hp.batch_size, hp.image_size), (3, 8, 256))

    def test_unknown_keys_are_ignored_with_a_warning(self) -> None:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            hp = sm.parse_hyperparameters({"epochs": "2", "optimizer": "adam", "momentum": "0.9"})
        self.assertEqual(hp.epochs, 2)
        self.assertIn("warning", err.getvalue())
        self.assertIn("momentum, optimizer", err.getvalue())

    def test_invalid_values_name_the_key(self) -> None:
        cases = [
            ({"epochs": "ten"}, "epochs", "not a whole number"),
            ({"epochs": "0"}, "epochs", "at least 1"),
            ({"epochs": "-3"}, "epochs", "not a whole number"),
            ({"epochs": "2.5"}, "epochs", "not a whole number"),
            ({"batch_size": ""}, "batch_size", "not a whole number"),
            ({"learning_rate": "fast"}, "learning_rate", "not a number"),
            ({"learning_rate": "0"}, "learning_rate", "greater than 0"),
            ({"learning_rate": "nan"}, "learning_rate", "finite"),
            ({"image_size": "100"}, "image_size", "multiple of 16"),
            ({"image_size": "16"}, "image_size", "at least 32"),
            ({"epochs": True}, "epochs", "expected a string"),
            ({"epochs": '"50"'}, "epochs", "quoted"),
        ]
        for raw, key, reason in cases:
            with self.subTest(raw=raw):
                with self.assertRaises(sm.HyperparameterError) as ctx:
                    self.parse(raw)
                self.assertEqual(list(ctx.exception.problems), [key])
                self.assertIn(f'hyperparameter "{key}"', str(ctx.exception))
                self.assertIn(reason, str(ctx.exception))

    def test_all_invalid_values_are_reported_together(self) -> None:
        with self.assertRaises(sm.HyperparameterError) as ctx:
            self.parse({"epochs": "ten", "batch_size": "0", "image_size": "256"})
        self.assertEqual(sorted(ctx.exception.problems), ["batch_size", "epochs"])

    def test_json_numbers_are_accepted_for_local_files(self) -> None:
        hp = self.parse({"epochs": 5, "learning_rate": 0.01})
        self.assertEqual((hp.epochs, hp.learning_rate), (5, 0.01))

    def test_broken_file(self) -> None:
        path = write_hyperparameters(self.root, {})
        path.write_text("{not json", encoding="utf-8")
        with self.assertRaisesRegex(sm.ContractError, "not valid JSON"):
            sm.load_hyperparameters(self.paths)
        path.write_text("[1, 2]", encoding="utf-8")
        with self.assertRaisesRegex(sm.ContractError, "JSON object"):
            sm.load_hyperparameters(self.paths)


class ChannelTest(TempRoot):
    def discover(self) -> sm.Channels:
        with contextlib.redirect_stderr(io.StringIO()):
            return sm.discover_channels(self.paths)

    def test_train_is_required(self) -> None:
        with self.assertRaises(sm.ChannelError) as ctx:
            self.discover()
        self.assertIn("required channel 'train'", str(ctx.exception))
        self.assertIn("channels present: none", str(ctx.exception))

    def test_train_missing_lists_present_channels(self) -> None:
        make_channel(self.root, "validation", ["a"], size=4)
        with self.assertRaisesRegex(sm.ChannelError, r"channels present: validation"):
            self.discover()

    def test_validation_is_optional(self) -> None:
        make_channel(self.root, "train", ["b", "a"], size=4)
        channels = self.discover()
        self.assertIsNone(channels.validation)
        self.assertEqual([s.name for s in channels.train], ["a", "b"])

    def test_pairs_are_matched_by_name(self) -> None:
        cdir = make_channel(self.root, "train", ["img01", "img02"], size=4)
        make_channel(self.root, "validation", ["v1"], size=4)
        channels = self.discover()
        first = channels.train[0]
        self.assertEqual(first.image, cdir / "images" / "img01.png")
        self.assertEqual(first.mask, cdir / "masks" / "img01.png")
        self.assertEqual([s.name for s in channels.validation or []], ["v1"])

    def test_unmatched_files_are_reported_by_name(self) -> None:
        cdir = make_channel(self.root, "train", ["a", "b", "c"], size=4)
        (cdir / "masks" / "b.png").unlink()
        (cdir / "masks" / "zz.png").write_bytes((cdir / "masks" / "a.png").read_bytes())
        with self.assertRaises(sm.ChannelError) as ctx:
            self.discover()
        msg = str(ctx.exception)
        self.assertIn("1 image(s) without a mask in masks/: b", msg)
        self.assertIn("1 mask(s) without an image in images/: zz", msg)

    def test_missing_masks_folder(self) -> None:
        (self.root / "input" / "data" / "train" / "images").mkdir(parents=True)
        with self.assertRaisesRegex(sm.ChannelError, "folder masks/ is missing"):
            self.discover()

    def test_empty_channel(self) -> None:
        for d in ("images", "masks"):
            (self.root / "input" / "data" / "train" / d).mkdir(parents=True)
        with self.assertRaisesRegex(sm.ChannelError, "no image files"):
            self.discover()

    def test_other_files_are_skipped_with_a_warning(self) -> None:
        cdir = make_channel(self.root, "train", ["a"], size=4)
        (cdir / "images" / "notes.txt").write_text("x")
        (cdir / "images" / ".DS_Store").write_text("x")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            channels = sm.discover_channels(self.paths)
        self.assertEqual(len(channels.train), 1)
        self.assertIn("images/notes.txt", err.getvalue())
        self.assertNotIn(".DS_Store", err.getvalue())

    def test_png_only_extensions(self) -> None:
        cdir = make_channel(self.root, "train", ["a"], size=4)
        (cdir / "images" / "b.jpg").write_bytes(b"x")
        (cdir / "masks" / "b.jpg").write_bytes(b"x")
        with contextlib.redirect_stderr(io.StringIO()):
            channels = sm.discover_channels(self.paths, extensions=sm.PNG_EXTENSIONS)
            self.assertEqual([s.name for s in channels.train], ["a"])
            self.assertEqual(len(sm.discover_channels(self.paths).train), 2)

    def test_pipe_mode_is_rejected(self) -> None:
        make_channel(self.root, "train", ["a"], size=4)
        cfg = self.paths.input_data_config_file
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(json.dumps({"train": {"TrainingInputMode": "Pipe"}}))
        with self.assertRaisesRegex(sm.ChannelError, "Pipe input mode"):
            self.discover()


class FailureTest(TempRoot):
    def execute(self, main, argv=("train",)) -> int:
        with contextlib.redirect_stderr(io.StringIO()):
            return sm.execute(main, list(argv), self.paths)

    def failure(self) -> str:
        return self.paths.failure_file.read_text(encoding="utf-8")

    def test_success_exits_zero_without_failure_file(self) -> None:
        self.assertEqual(self.execute(lambda: None), 0)
        self.assertEqual(self.execute(lambda: None, argv=()), 0)
        self.assertFalse(self.paths.failure_file.exists())

    def test_exception_writes_failure_and_exits_one(self) -> None:
        def main() -> None:
            raise ValueError("boom")
        self.assertEqual(self.execute(main), 1)
        self.assertTrue(self.failure().startswith("ValueError: boom (at test_contract.py:"))

    def test_contract_errors_are_written_as_is(self) -> None:
        def main() -> None:
            raise sm.HyperparameterError({"epochs": "'ten' is not a whole number"})
        self.assertEqual(self.execute(main), 1)
        self.assertEqual(self.failure(),
                         'invalid hyperparameters: hyperparameter "epochs": \'ten\' is not a whole number')

    def test_sys_exit_with_message_is_a_failure(self) -> None:
        self.assertEqual(self.execute(lambda: sys.exit("no GPU found")), 1)
        self.assertEqual(self.failure(), "no GPU found")

    def test_sys_exit_with_number_is_passed_through(self) -> None:
        self.assertEqual(self.execute(lambda: sys.exit(143)), 143)
        self.assertFalse(self.paths.failure_file.exists())

    def test_unexpected_arguments_fail(self) -> None:
        self.assertEqual(self.execute(lambda: None, argv=("serve",)), 1)
        self.assertIn("only trains", self.failure())
        self.assertEqual(self.execute(lambda: None, argv=("train", "--x")), 1)
        self.assertIn("unexpected arguments", self.failure())
        self.assertEqual(self.execute(lambda: None, argv=("extra", "args")), 1)
        self.assertIn("unexpected arguments", self.failure())

    def test_the_toolkits_hyperparameter_arguments_are_accepted(self) -> None:
        self.assertEqual(self.execute(lambda: None, argv=("--epochs", "1", "--lr", "0.1")), 0)
        self.assertEqual(self.execute(lambda: None, argv=("train", "--epochs", "1")), 0)

    def test_long_reasons_are_truncated_to_1024_bytes(self) -> None:
        reason = "é" + "x" * 5000
        def main() -> None:
            raise sm.ContractError(reason)
        self.execute(main)
        text = self.failure()
        self.assertLessEqual(len(text.encode("utf-8")), sm.MAX_FAILURE_LENGTH)
        self.assertGreater(len(text.encode("utf-8")), sm.MAX_FAILURE_LENGTH - 8)
        self.assertTrue(text.startswith("éxxx"))
        self.assertTrue(text.endswith(" ..."))
        self.assertEqual(sm.truncate_reason("short"), "short")
        self.assertEqual(sm.truncate_reason("  "), "training failed (no reason given)")
        # multi-byte characters are never split
        self.assertLessEqual(len(sm.truncate_reason("€" * 1000).encode("utf-8")), 1024)

    def test_run_wrapper_in_a_subprocess(self) -> None:
        script = self.root / "prog.py"
        script.write_text(textwrap.dedent("""
            import sagemaker_contract as sm
            def main():
                raise RuntimeError("disk full")
            sm.run(main)
        """))
        proc = subprocess.run([sys.executable, str(script), "train"], env=subprocess_env(self.root),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("Traceback", proc.stderr)
        self.assertTrue(self.failure().startswith("RuntimeError: disk full"))


class TrainProgramFailureTest(TempRoot):
    """train.py as SageMaker runs it; every case fails before torch is used."""

    def run_train(self, *args: str, pythonpath=()) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(TRAIN_PY), *args],
                              env=subprocess_env(self.root, pythonpath),
                              capture_output=True, text=True, timeout=120)

    def failure(self) -> str:
        return self.paths.failure_file.read_text(encoding="utf-8")

    def test_missing_train_channel(self) -> None:
        proc = self.run_train("train")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("required channel 'train' not found", self.failure())

    def test_invalid_hyperparameter(self) -> None:
        write_hyperparameters(self.root, {"epochs": "ten"})
        make_channel(self.root, "train", ["a"], size=4)
        proc = self.run_train("train")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn('hyperparameter "epochs": \'ten\' is not a whole number', self.failure())

    def test_missing_torch_goes_to_the_failure_file(self) -> None:
        # A stub package shadows any installed torch, so this runs the same everywhere.
        stub = self.root / "stub" / "torch"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("raise ImportError('No module named torch (test stub)')\n")
        make_channel(self.root, "train", ["a", "b"], size=4)
        proc = self.run_train("train", pythonpath=[stub.parent])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("PyTorch is not importable in this image", self.failure())
        self.assertIn("test stub", self.failure())

    def test_serve_is_refused(self) -> None:
        proc = self.run_train("serve")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("only trains", self.failure())


class CheckpointTest(TempRoot):
    def test_round_trip_bytes(self) -> None:
        payload = bytes(range(256)) * 10
        path = sm.save_checkpoint(3, payload, self.paths)
        self.assertEqual(path, self.paths.checkpoint_dir / "checkpoint-epoch-0003.ckpt")
        self.assertEqual(sm.load_checkpoint(path), payload)
        self.assertEqual(sm.latest_checkpoint(self.paths), (3, path))

    def test_round_trip_callbacks(self) -> None:
        state = {"epoch": 2, "weights": [0.5, 1.5]}
        path = sm.save_checkpoint(2, lambda f: f.write(json.dumps(state).encode()), self.paths)
        loaded = sm.load_checkpoint(path, lambda f: json.loads(f.read().decode()))
        self.assertEqual(loaded, state)

    def test_no_checkpoint(self) -> None:
        self.assertIsNone(sm.latest_checkpoint(self.paths))
        self.paths.checkpoint_dir.mkdir(parents=True)
        self.assertIsNone(sm.latest_checkpoint(self.paths))

    def test_latest_is_by_epoch_number_and_ignores_other_files(self) -> None:
        for epoch in (2, 9, 10, 1):
            sm.save_checkpoint(epoch, f"e{epoch}".encode(), self.paths)
        d = self.paths.checkpoint_dir
        (d / ".checkpoint-epoch-0099.ckpt.tmp-123").write_bytes(b"partial")
        (d / "checkpoint-epoch-0050.ckpt.bak").write_bytes(b"x")
        (d / "notes.txt").write_bytes(b"x")
        epoch, path = sm.latest_checkpoint(self.paths)
        self.assertEqual(epoch, 10)
        self.assertEqual(sm.load_checkpoint(path), b"e10")
        self.assertEqual([e for e, _ in sm.list_checkpoints(self.paths)], [1, 2, 9, 10])

    def test_overwrite_is_atomic_and_leaves_no_temp_files(self) -> None:
        sm.save_checkpoint(1, b"old", self.paths)
        sm.save_checkpoint(1, b"new", self.paths)
        self.assertEqual(sorted(p.name for p in self.paths.checkpoint_dir.iterdir()),
                         ["checkpoint-epoch-0001.ckpt"])
        self.assertEqual(sm.load_checkpoint(sm.latest_checkpoint(self.paths)[1]), b"new")

    def test_failed_write_keeps_the_previous_checkpoint(self) -> None:
        sm.save_checkpoint(4, b"good", self.paths)

        def broken(f) -> None:
            f.write(b"half")
            raise OSError("disk full")

        with self.assertRaisesRegex(OSError, "disk full"):
            sm.save_checkpoint(4, broken, self.paths)
        with self.assertRaises(OSError):
            sm.save_checkpoint(5, broken, self.paths)
        self.assertEqual(sorted(p.name for p in self.paths.checkpoint_dir.iterdir()),
                         ["checkpoint-epoch-0004.ckpt"])
        self.assertEqual(sm.load_checkpoint(sm.latest_checkpoint(self.paths)[1]), b"good")

    def test_keep_last_prunes_older_checkpoints(self) -> None:
        for epoch in range(1, 6):
            sm.save_checkpoint(epoch, b"x", self.paths, keep_last=2)
        self.assertEqual([e for e, _ in sm.list_checkpoints(self.paths)], [4, 5])

    def test_invalid_epoch(self) -> None:
        for bad in (-1, 1.5, True, "3"):
            with self.assertRaises(ValueError):
                sm.save_checkpoint(bad, b"x", self.paths)


class MetricTest(unittest.TestCase):
    def test_exact_format(self) -> None:
        self.assertEqual(sm.format_metrics(3, 0.41, 0.77), "epoch=3 train_loss=0.41 val_dice=0.77")
        self.assertEqual(sm.format_metrics(12, 0.123456789), "epoch=12 train_loss=0.123457")
        self.assertEqual(sm.format_metrics(1, 1.5e-7, 1.0), "epoch=1 train_loss=1.5e-07 val_dice=1")

    def test_emit_prints_one_line(self) -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            line = sm.emit_metrics(2, 0.5, 0.25)
        self.assertEqual(out.getvalue(), line + "\n")

    def test_rejects_non_numbers(self) -> None:
        with self.assertRaises(TypeError):
            sm.format_metrics(1.0, 0.5)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            sm.format_metrics(1, True)
        with self.assertRaises(ValueError):
            sm.format_metrics(1, "abc")  # type: ignore[arg-type]

    @unittest.skipIf(tomllib is None, "tomllib needs Python 3.11")
    def test_sagetrain_toml_metric_regexes_match(self) -> None:
        config_path = REPO_ROOT / "examples" / "sagetrain.toml"
        with open(config_path, "rb") as f:
            config = tomllib.load(f)
        metrics = config["metrics"]
        self.assertEqual(set(metrics), {"train_loss", "val_dice"})
        for train_loss, val_dice in [(0.41, 0.77), (1.5e-07, 1.0), (12.25, 0.000123), (0.5, 0.0)]:
            line = sm.format_metrics(7, train_loss, val_dice)
            for name, expected in (("train_loss", train_loss), ("val_dice", val_dice)):
                regex = re.compile(metrics[name])
                self.assertEqual(regex.groups, 1, f"{name}: one capture group")
                m = regex.search(line)
                self.assertIsNotNone(m, f"{metrics[name]!r} does not match {line!r}")
                self.assertAlmostEqual(float(m.group(1)), expected, places=5, msg=line)
        # the metric regexes do not match the trainer's other log lines
        for other in ("[train] resuming from checkpoint-epoch-0003.ckpt after 3 completed epoch(s)",
                      "[train] data loaded in 0.4s"):
            for regex in metrics.values():
                self.assertIsNone(re.search(regex, other), other)


class SigtermTest(TempRoot):
    def start(self, body: str) -> subprocess.Popen:
        script = self.root / "prog.py"
        script.write_text(textwrap.dedent(body))
        proc = subprocess.Popen([sys.executable, str(script), "train"], env=subprocess_env(self.root),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(self._reap, proc)
        line = proc.stdout.readline()
        self.assertEqual(line.strip(), "ready", proc.stderr.read() if not line else line)
        return proc

    @staticmethod
    def _reap(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)

    def stop(self, proc: subprocess.Popen) -> str:
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        return err

    def test_flag_then_save_then_exit(self) -> None:
        proc = self.start("""
            import time
            import sagemaker_contract as sm
            paths = sm.Paths.from_env()
            term = sm.TerminationHandler().install()
            step = 0
            def main():
                global step
                print("ready", flush=True)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    step += 1
                    term.check(lambda: sm.save_checkpoint(7, f"step={step}".encode(), paths))
                    time.sleep(0.01)
                raise RuntimeError("no SIGTERM arrived")
            sm.run(main)
        """)
        err = self.stop(proc)
        self.assertEqual(proc.returncode, sm.SIGTERM_EXIT_CODE, err)
        self.assertIn("received signal 15", err)
        epoch, path = sm.latest_checkpoint(self.paths)
        self.assertEqual(epoch, 7)
        self.assertRegex(sm.load_checkpoint(path).decode(), r"^step=\d+$")
        self.assertFalse(self.paths.failure_file.exists())

    def test_immediate_callback(self) -> None:
        proc = self.start("""
            import time
            import sagemaker_contract as sm
            paths = sm.Paths.from_env()
            def save():
                sm.save_checkpoint(3, b"saved-by-handler", paths)
            sm.TerminationHandler(on_terminate=save, immediate=True).install()
            def main():
                print("ready", flush=True)
                time.sleep(30)
                raise RuntimeError("no SIGTERM arrived")
            sm.run(main)
        """)
        err = self.stop(proc)
        self.assertEqual(proc.returncode, 143, err)
        self.assertEqual(sm.load_checkpoint(sm.latest_checkpoint(self.paths)[1]), b"saved-by-handler")
        self.assertFalse(self.paths.failure_file.exists())

    def test_failed_save_on_sigterm_is_a_failure(self) -> None:
        proc = self.start("""
            import time
            import sagemaker_contract as sm
            def save():
                raise OSError("checkpoint volume full")
            term = sm.TerminationHandler(on_terminate=save).install()
            def main():
                print("ready", flush=True)
                for _ in range(3000):
                    term.check()
                    time.sleep(0.01)
            sm.run(main)
        """)
        err = self.stop(proc)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("checkpoint volume full", self.paths.failure_file.read_text())


if __name__ == "__main__":
    unittest.main()


class SecretsTest(unittest.TestCase):
    ARN = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:sagetrain/wandb-AbCdEf"
    DB = "arn:aws:secretsmanager:eu-west-2:111122223333:secret:sagetrain/db-123456"

    def test_each_secret_is_read_once_in_its_region_and_set_under_its_name(self) -> None:
        calls = []

        def read(arn: str, region: str) -> str:
            calls.append((arn, region))
            return {self.ARN: "tok-123", self.DB: '{"password": "pw", "port": 5432}'}[arn]

        env = {"SAGETRAIN_SECRET_WANDB_API_KEY": self.ARN,
               "SAGETRAIN_SECRET_DB_PASSWORD": f"{self.DB}:password",
               "SAGETRAIN_SECRET_DB_PORT": f"{self.DB}:port",
               "OTHER": "x"}
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            done = sm.export_secrets(env, read)
        self.assertEqual(done, ["DB_PASSWORD", "DB_PORT", "WANDB_API_KEY"])
        self.assertEqual((env["WANDB_API_KEY"], env["DB_PASSWORD"], env["DB_PORT"]),
                         ("tok-123", "pw", "5432"))
        self.assertEqual({r for _, r in calls}, {"eu-west-2"})
        self.assertNotIn("tok-123", err.getvalue())
        self.assertNotIn("pw\n", err.getvalue())

    def test_a_name_already_set_by_the_launcher_is_not_read_again(self) -> None:
        env = {"SAGETRAIN_SECRET_WANDB_API_KEY": self.ARN, "WANDB_API_KEY": "from-launcher"}
        self.assertEqual(sm.export_secrets(env, lambda a, r: self.fail("read again")), [])
        self.assertEqual(env["WANDB_API_KEY"], "from-launcher")

    def test_a_missing_json_key_or_a_bad_arn_is_a_contract_error(self) -> None:
        with self.assertRaisesRegex(sm.ContractError, "has no JSON key password"):
            sm.export_secrets({"SAGETRAIN_SECRET_DB": f"{self.DB}:password"},
                              lambda a, r: '{"user": "u"}')
        with self.assertRaisesRegex(sm.ContractError, "is not a secret ARN"):
            sm.export_secrets({"SAGETRAIN_SECRET_X": "sagetrain/x"}, lambda a, r: "v")
