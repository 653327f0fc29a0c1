"""train.py on several "hosts": local processes with their own SM_ROOT, gloo on 127.0.0.1.

Each host gets a /opt/ml-like tree with ``resourceconfig.json`` (hosts ``algo-1``, ``algo-2``)
and the same data (FullyReplicated). The rendezvous address is 127.0.0.1 through
``SAGETRAIN_MASTER_ADDR`` and a free port through ``MASTER_PORT``; gloo is kept on the loopback
interface. With ``SAGETRAIN_TEST_DIGEST_DIR`` set, every rank writes a digest of its final model
state, so the tests can check that all ranks hold the same model.

torch is required (see test_smoke_torch.py); every process is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sagemaker_contract as sm  # noqa: E402
from sample_data import TRAIN_PY, make_channel, subprocess_env, write_hyperparameters  # noqa: E402

try:
    import torch
except ImportError as e:
    raise ImportError(f"these tests need torch ({e}); run them with ./scripts/test, which "
                      f"installs it, or with a python that has torch") from e

import train  # noqa: E402

HOSTS = ["algo-1", "algo-2"]
RUN_TIMEOUT = 180  # seconds for one training run; a hang fails the test
METRIC_LINE = re.compile(r"^epoch=(\d+) train_loss=([0-9.eE+-]+) val_dice=([0-9.eE+-]+)$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Run:
    """Training processes started together; output to files (no pipe can fill up)."""

    def __init__(self, test: "ClusterTestCase", envs: List[Dict[str, str]], tag: str):
        self.test = test
        self.logs = []
        self.procs = []
        for i, env in enumerate(envs):
            out = test.tmp / f"{tag}-{i}.out"
            err = test.tmp / f"{tag}-{i}.err"
            self.logs.append((out, err))
            with open(out, "wb") as o, open(err, "wb") as e:
                # A session of its own: kill() ends the processes a host process started too.
                self.procs.append(subprocess.Popen([sys.executable, str(TRAIN_PY), "train"],
                                                   env=env, stdout=o, stderr=e,
                                                   start_new_session=True))
        test.addCleanup(self.kill)

    def kill(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def stdout(self, i: int) -> str:
        return self.logs[i][0].read_text(errors="replace")

    def stderr(self, i: int) -> str:
        return self.logs[i][1].read_text(errors="replace")

    def describe(self) -> str:
        return "\n".join(f"--- process {i} (exit {p.poll()}) stdout:\n{self.stdout(i)}\n"
                         f"--- stderr:\n{self.stderr(i)}" for i, p in enumerate(self.procs))

    def wait(self, timeout: float = RUN_TIMEOUT) -> List[int]:
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                self.test.fail(f"training did not finish within {timeout}s\n{self.describe()}")
        return [p.returncode for p in self.procs]

    def wait_for_output(self, i: int, pattern: str, timeout: float = RUN_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.stdout(i), re.M):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.kill()
                self.test.fail(f"no line matching {pattern!r} from process {i}\n{self.describe()}")
            time.sleep(0.05)


class ClusterTestCase(unittest.TestCase):
    HYPERPARAMETERS = {"batch_size": "2", "learning_rate": "0.01", "image_size": "32",
                       "base_channels": "4"}

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self._tmp.cleanup)
        self.tmp = Path(self._tmp.name)
        self.digests = self.tmp / "digests"

    def make_host(self, name: str, hosts: Optional[List[str]]) -> sm.Paths:
        """A host's tree; every host gets the same 5 training and 3 validation samples."""
        root = self.tmp / name
        make_channel(root, "train", [f"t{i}" for i in range(5)], size=32, seed=1)
        make_channel(root, "validation", ["v1", "v2", "v3"], size=32, seed=2)
        if hosts is not None:
            config = root / "input" / "config" / "resourceconfig.json"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(json.dumps({"current_host": name, "hosts": hosts,
                                          "network_interface_name": "eth0"}))
        return sm.Paths(root)

    def env(self, paths: sm.Paths, epochs: int, port: int, **extra: str) -> Dict[str, str]:
        write_hyperparameters(paths.root, dict(self.HYPERPARAMETERS, epochs=str(epochs)))
        env = subprocess_env(paths.root)
        for var in ("MASTER_ADDR", "MASTER_PORT", "SAGETRAIN_MASTER_ADDR",
                    "SAGETRAIN_PROCESSES_PER_HOST", "SAGETRAIN_LOCAL_RANK"):
            env.pop(var, None)
        env.update({
            "SAGETRAIN_MASTER_ADDR": "127.0.0.1",  # on SageMaker: the first host's name
            "MASTER_PORT": str(port),
            "GLOO_SOCKET_IFNAME": "lo",  # gloo's own connections stay on loopback too
            "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": "1",
            "SAGETRAIN_TEST_DIGEST_DIR": str(self.digests),
        })
        env.update(extra)
        return env

    def digest_records(self) -> Dict[int, dict]:
        return {int(p.stem.split("-")[1]): json.loads(p.read_text())
                for p in sorted(self.digests.glob("rank-*.json"))}

    def model_digest(self, paths: sm.Paths) -> str:
        state = torch.load(paths.model_dir / "model.pt", map_location="cpu", weights_only=True)
        return train.state_digest(torch, state)

    def assert_checkpoint_of_last_epoch(self, paths: sm.Paths, stdout: str) -> None:
        epochs = [int(e) for e, _, _ in METRIC_LINE.findall(stdout)]
        saved = sm.latest_checkpoint(paths)
        self.assertIsNotNone(saved, stdout)
        self.assertEqual(saved[0], epochs[-1], stdout)
        self.assertTrue(2 <= saved[0] < 500, stdout)

    def assert_no_failure(self, *all_paths: sm.Paths) -> None:
        for paths in all_paths:
            self.assertFalse(paths.failure_file.exists(), paths.failure_file)


class TwoHostsTest(ClusterTestCase):
    """Two hosts with one CPU process each: ranks 0 (algo-1) and 1 (algo-2)."""

    def setUp(self) -> None:
        super().setUp()
        self.hosts = [self.make_host(h, HOSTS) for h in HOSTS]

    def run_hosts(self, epochs: int, tag: str) -> Run:
        port = free_port()
        self.digests_clear()
        return Run(self, [self.env(p, epochs, port) for p in self.hosts], tag)

    def digests_clear(self) -> None:
        for p in self.digests.glob("rank-*.json"):
            p.unlink()

    def train_hosts(self, epochs: int, tag: str) -> Run:
        run = self.run_hosts(epochs, tag)
        self.assertEqual(run.wait(), [0, 0], run.describe())
        self.assert_no_failure(*self.hosts)
        return run

    def test_two_hosts_train_one_model_written_by_rank_0(self) -> None:
        run = self.train_hosts(epochs=2, tag="train")
        first, second = self.hosts

        # Only rank 0 prints metric lines (the job's metrics would count rank 1's twice).
        lines = METRIC_LINE.findall(run.stdout(0))
        self.assertEqual([int(e) for e, _, _ in lines], [1, 2], run.describe())
        for _, loss, dice in lines:
            self.assertGreater(float(loss), 0.0)
            self.assertTrue(0.0 <= float(dice) <= 1.0)
        self.assertEqual(METRIC_LINE.findall(run.stdout(1)), [], run.describe())
        self.assertNotIn("trains its own copy", run.stderr(0) + run.stderr(1))

        # Only rank 0 writes the model and the checkpoints.
        self.assertTrue((first.model_dir / "model.pt").is_file())
        self.assertEqual(json.loads((first.model_dir / "model.json").read_text())["world_size"], 2)
        self.assertEqual([e for e, _ in sm.list_checkpoints(first)], [1, 2])
        self.assertFalse(second.model_dir.exists() and any(second.model_dir.iterdir()))
        self.assertEqual(sm.list_checkpoints(second), [])

        # One model: both ranks end with the same state, and it is the one rank 0 wrote.
        records = self.digest_records()
        self.assertEqual(sorted(records), [0, 1])
        self.assertEqual(records[0]["world_size"], 2)
        self.assertEqual(records[0]["digest"], records[1]["digest"])
        self.assertEqual(self.model_digest(first), records[0]["digest"])
        # Each rank took its half: 5 samples -> 3 per rank -> 2 steps of 2 (one process: 3).
        self.assertEqual([records[r]["steps_per_epoch"] for r in (0, 1)], [2, 2])

    def test_two_hosts_resume_every_rank_from_rank_0_checkpoint(self) -> None:
        first, second = self.hosts
        self.train_hosts(epochs=1, tag="first")
        self.assertEqual([e for e, _ in sm.list_checkpoints(first)], [1])

        run = self.train_hosts(epochs=2, tag="resumed")
        self.assertIn("resuming from checkpoint-epoch-0001.ckpt", run.stdout(0), run.describe())
        # algo-2 has no checkpoint of its own: rank 1 resumed from the state rank 0 sent.
        self.assertEqual(sm.list_checkpoints(second), [])
        self.assertIn("resuming from rank 0's checkpoint after 1 completed epoch(s)",
                      run.stdout(1), run.describe())
        self.assertEqual([int(e) for e, _, _ in METRIC_LINE.findall(run.stdout(0))], [2])
        records = self.digest_records()
        self.assertEqual([records[r]["resumed_epochs"] for r in (0, 1)], [1, 1])
        self.assertEqual([records[r]["epochs"] for r in (0, 1)], [2, 2])
        self.assertEqual(records[0]["digest"], records[1]["digest"])
        self.assertEqual(self.model_digest(first), records[0]["digest"])
        self.assertEqual([e for e, _ in sm.list_checkpoints(first)], [1, 2])
        resumed = records[0]["digest"]

        # The resumed run ends where an uninterrupted two-epoch run ends: the checkpoint holds
        # everything (weights, optimizer, BatchNorm statistics) and the data order is seeded.
        for paths in self.hosts:
            for _, ckpt in sm.list_checkpoints(paths):
                ckpt.unlink()
        self.train_hosts(epochs=2, tag="straight")
        self.assertEqual(self.digest_records()[0]["resumed_epochs"], 0)
        self.assertEqual(self.digest_records()[0]["digest"], resumed)

    def test_two_hosts_with_sharded_data_take_the_same_number_of_steps(self) -> None:
        # ShardedByS3Key: each host has its own share of the files (3 and 2 samples here), and
        # the rank with fewer batches repeats samples instead of leaving the other waiting.
        for paths, names in zip(self.hosts, (["t0", "t1", "t2"], ["t3", "t4"])):
            images = paths.channel_dir("train") / "images"
            for f in images.iterdir():
                if f.stem not in names:
                    f.unlink()
                    (paths.channel_dir("train") / "masks" / f.name).unlink()
            paths.input_data_config_file.write_text(json.dumps({
                "train": {"TrainingInputMode": "File", "S3DistributionType": "ShardedByS3Key"},
                "validation": {"TrainingInputMode": "File",
                               "S3DistributionType": "FullyReplicated"}}))
        run = self.train_hosts(epochs=2, tag="sharded")
        self.assertIn("3 training and 3 validation samples on host algo-1", run.stdout(0))
        self.assertIn("2 training and 3 validation samples on host algo-2", run.stdout(1))
        records = self.digest_records()
        self.assertEqual([records[r]["steps_per_epoch"] for r in (0, 1)], [2, 2])
        self.assertEqual(records[0]["digest"], records[1]["digest"])
        self.assertEqual(self.model_digest(self.hosts[0]), records[0]["digest"])

    def test_sigterm_on_one_host_stops_both_after_rank_0_saves(self) -> None:
        first, second = self.hosts
        run = self.run_hosts(epochs=500, tag="stopped")
        run.wait_for_output(0, r"^epoch=2 ")
        run.procs[1].send_signal(signal.SIGTERM)  # only algo-2: rank 1 must tell rank 0
        self.assertEqual(run.wait(60), [sm.SIGTERM_EXIT_CODE] * 2, run.describe())

        self.assertIn("another rank received SIGTERM", run.stdout(0))
        self.assertIn("received signal 15", run.stderr(1))
        # Rank 0 saved every completed epoch (at the epoch's end, or when the stop came
        # mid-epoch) and stopped early.
        self.assert_checkpoint_of_last_epoch(first, run.stdout(0))
        self.assertEqual(sm.list_checkpoints(second), [])
        self.assertFalse((first.model_dir / "model.pt").exists())
        self.assert_no_failure(*self.hosts)  # a stop is not a failure


class OneHostTwoProcessesTest(ClusterTestCase):
    """One host running two processes (as with two GPUs): train.py starts them itself."""

    def setUp(self) -> None:
        super().setUp()
        self.host = self.make_host("algo-1", ["algo-1"])

    def start(self, epochs: int, tag: str) -> Run:
        env = self.env(self.host, epochs, free_port(), SAGETRAIN_PROCESSES_PER_HOST="2")
        del env["SAGETRAIN_MASTER_ADDR"]  # one host: the rendezvous is 127.0.0.1 by default
        return Run(self, [env], tag)

    def test_one_host_two_processes_train_one_model(self) -> None:
        run = self.start(epochs=2, tag="train")
        self.assertEqual(run.wait(), [0], run.describe())
        self.assert_no_failure(self.host)
        self.assertIn("started 2 training processes (ranks 0-1 of 2)", run.stdout(0))
        self.assertEqual([int(e) for e, _, _ in METRIC_LINE.findall(run.stdout(0))], [1, 2])
        records = self.digest_records()
        self.assertEqual(sorted(records), [0, 1])
        self.assertEqual(records[0]["digest"], records[1]["digest"])
        self.assertEqual(self.model_digest(self.host), records[0]["digest"])

    def test_sigterm_to_the_host_process_reaches_every_process(self) -> None:
        run = self.start(epochs=500, tag="stopped")
        run.wait_for_output(0, r"^epoch=2 ")
        run.procs[0].send_signal(signal.SIGTERM)  # what SageMaker does: PID 1 of the container
        self.assertEqual(run.wait(60), [sm.SIGTERM_EXIT_CODE], run.describe())
        self.assertEqual(run.stderr(0).count("received signal 15"), 3, run.describe())
        self.assert_checkpoint_of_last_epoch(self.host, run.stdout(0))
        self.assertFalse((self.host.model_dir / "model.pt").exists())
        self.assert_no_failure(self.host)


if __name__ == "__main__":
    unittest.main()
