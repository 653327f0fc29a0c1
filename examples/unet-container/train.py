#!/usr/bin/env python3
"""Train a small 2-D U-Net for binary vessel segmentation on SageMaker, on one GPU or on every
GPU of every host of the job.

SageMaker runs ``docker run IMAGE train``; the Dockerfile's ENTRYPOINT is
``python /opt/program/train.py``, so this program gets the ``train`` argument (ignored) and
SIGTERM directly. Everything SageMaker-specific lives in ``sagemaker_contract.py``:

* hyperparameters ``epochs``, ``batch_size`` (per process), ``learning_rate``, ``image_size``,
  ``base_channels`` (the U-Net's width);
* channels ``train`` (required) and ``validation`` (optional), each ``images/NAME.png`` +
  ``masks/NAME.png``; a mask pixel is vessel when its gray value is >= 128 (or 1 in 0/1 masks);
* resumes from the newest checkpoint in ``/opt/ml/checkpoints`` and saves one after every epoch
  (and on SIGTERM, then exits 143);
* prints ``epoch=N train_loss=X val_dice=Y`` after every epoch;
* writes ``model/model.pt`` (a state_dict) and ``model/model.json`` (how to rebuild the net);
* any error goes to ``/opt/ml/output/failure`` with exit status 1 -- including a missing torch.

Several GPUs and hosts train ONE model with ``DistributedDataParallel``: the hosts come from
``resourceconfig.json`` (sorted; the first one is the rendezvous, port 29500), each host runs one
process per GPU (this program starts them and passes SIGTERM on), NCCL on GPUs and gloo on CPU.
Each rank trains on its share of the samples (``DistributedSampler``) and the gradients are
averaged, so one step covers ``batch_size`` x processes samples. Only rank 0 (the first host)
writes the model, the checkpoints and the metric lines; a restarted job resumes every rank from
rank 0's newest checkpoint; SIGTERM on any rank stops all of them at the same step, after rank 0
saved a checkpoint. One process in all (one GPU, or CPU only) trains as a plain loop.

Images are resized to ``image_size`` x ``image_size`` RGB and the whole data set is held in
memory by every process, which suits vessel data sets (tens to a few hundred images).
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pngio
import sagemaker_contract as sm

IN_CHANNELS = 3
BASE_CHANNELS = 16
SEED = 0
KEEP_CHECKPOINTS = 2
CHECKPOINT_FORMAT = 1
#: How long a process waits for every other one at the rendezvous (hosts start a bit apart).
RENDEZVOUS_SECONDS = 30 * 60
#: After one process of a host fails, how long the others get to stop before SIGKILL.
WORKER_GRACE_SECONDS = 30
#: Set by the per-host launcher for the processes it starts (one per GPU).
LOCAL_RANK_ENV_VAR = "SAGETRAIN_LOCAL_RANK"
#: Tests only: a folder where every rank writes a digest of its final model state.
DIGEST_DIR_ENV_VAR = "SAGETRAIN_TEST_DIGEST_DIR"


_log_prefix = "[train]"


def log(message: str) -> None:
    print(f"{_log_prefix} {message}", flush=True)


def import_torch() -> Any:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise sm.ContractError(
            f"PyTorch is not importable in this image ({e}); build the image FROM a PyTorch "
            f"base image such as pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime") from e
    return torch


# --------------------------------------------------------------------------------------------
# Data


def read_pixels(path: Path) -> Tuple[int, int, int, bytes]:
    """(width, height, channels, 8-bit pixels), with Pillow if installed, else pngio (PNG)."""
    try:
        from PIL import Image
    except ImportError:
        if path.suffix.lower() != ".png":
            raise sm.ContractError(f"{path.name}: only PNG files can be read without Pillow; "
                                   f"convert the data to PNG or install Pillow in the image")
        return pngio.read_png(path)
    with Image.open(path) as im:
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB" if im.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA") else "L")
        width, height = im.size
        return width, height, len(im.getbands()), im.tobytes()


def load_samples(torch: Any, samples: List[sm.Sample], size: int) -> Tuple[Any, Any]:
    """Images as float [N, 3, S, S] in 0..1 and masks as float [N, 1, S, S] in {0, 1}."""
    F = torch.nn.functional
    images, masks = [], []
    for s in samples:
        w, h, c, data = read_pixels(s.image)
        img = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(h, w, c)
        img = img[..., :1].expand(h, w, 3) if c in (1, 2) else img[..., :3]
        img = img.permute(2, 0, 1).float().div(255.0).unsqueeze(0)
        images.append(F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False))

        mw, mh, mc, mdata = read_pixels(s.mask)
        if (mw, mh) != (w, h):
            raise sm.ContractError(f"sample '{s.name}': image is {w}x{h} but mask is {mw}x{mh}")
        m = torch.frombuffer(bytearray(mdata), dtype=torch.uint8).reshape(h, w, mc)
        m = m[..., :3].amax(dim=-1) if mc >= 3 else m[..., 0]
        m = m.float()
        if m.max() <= 1:
            m = m * 255.0
        m = (m >= 128).float().reshape(1, 1, h, w)
        masks.append(F.interpolate(m, size=(size, size), mode="nearest"))
    return torch.cat(images), torch.cat(masks)


# --------------------------------------------------------------------------------------------
# Model and loss


def build_unet(torch: Any, in_channels: int = IN_CHANNELS, base: int = BASE_CHANNELS) -> Any:
    nn = torch.nn

    def double_conv(cin: int, cout: int) -> Any:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True))

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [base, base * 2, base * 4, base * 8]
            self.downs = nn.ModuleList()
            cin = in_channels
            for w in widths:
                self.downs.append(double_conv(cin, w))
                cin = w
            self.pool = nn.MaxPool2d(2)
            self.bottleneck = double_conv(widths[-1], widths[-1] * 2)
            self.ups = nn.ModuleList()
            self.up_convs = nn.ModuleList()
            cin = widths[-1] * 2
            for w in reversed(widths):
                self.ups.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
                self.up_convs.append(double_conv(w * 2, w))
                cin = w
            self.head = nn.Conv2d(base, 1, 1)

        def forward(self, x: Any) -> Any:
            skips = []
            for down in self.downs:
                x = down(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottleneck(x)
            for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips)):
                x = conv(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    return UNet()


def dice_bce_loss(torch: Any, logits: Any, target: Any) -> Any:
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    probs = torch.sigmoid(logits)
    inter = (probs * target).sum(dim=(1, 2, 3))
    total = probs.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (total + 1.0)
    return bce + (1.0 - dice.mean())


def evaluate_dice(torch: Any, model: Any, x: Any, y: Any, batch_size: int, device: Any,
                  check: Callable[[], None], sum_counts: Callable[[List[float]], List[float]]
                  ) -> float:
    """Dice of the thresholded prediction over the validation samples ``x``/``y`` of this rank;
    ``sum_counts`` adds the counts of every rank (1.0 if prediction and target are empty)."""
    model.eval()
    tp = fp = fn = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            check()
            pred = (model(x[i:i + batch_size].to(device)) > 0).float()
            target = y[i:i + batch_size].to(device)
            tp += float((pred * target).sum())
            fp += float((pred * (1 - target)).sum())
            fn += float(((1 - pred) * target).sum())
    tp, fp, fn = sum_counts([tp, fp, fn])
    denom = 2 * tp + fp + fn
    return 1.0 if denom == 0 else 2 * tp / denom


# --------------------------------------------------------------------------------------------
# Checkpoints


def save_state(torch: Any, paths: sm.Paths, epoch: int, model: Any, optimizer: Any,
               hp: sm.Hyperparameters) -> Path:
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "hyperparameters": sm.hyperparameters_dict(hp),
        "rng": torch.get_rng_state(),
    }
    path = sm.save_checkpoint(epoch, lambda f: torch.save(state, f), paths,
                              keep_last=KEEP_CHECKPOINTS)
    return path


def apply_state(torch: Any, state: Dict[str, Any], model: Any, optimizer: Any,
                hp: sm.Hyperparameters) -> None:
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    for group in optimizer.param_groups:  # the job's learning rate wins over the saved one
        group["lr"] = hp.learning_rate


def resume(torch: Any, paths: sm.Paths, model: Any, optimizer: Any,
           hp: sm.Hyperparameters) -> Tuple[int, Optional[Dict[str, Any]]]:
    """Load the newest readable checkpoint into the model and the optimizer; returns the number
    of completed epochs and the checkpoint's state (0 and None without a checkpoint)."""
    for epoch, path in reversed(sm.list_checkpoints(paths)):
        try:
            # Load on the CPU: the RNG state must stay a CPU tensor; load_state_dict moves
            # the weights and the optimizer state to the model's device.
            state = sm.load_checkpoint(
                path, lambda f: torch.load(f, map_location="cpu", weights_only=True))
            apply_state(torch, state, model, optimizer, hp)
        except Exception as e:  # noqa: BLE001 - fall back to an older checkpoint
            sm.warn(f"cannot resume from {path.name} ({type(e).__name__}: {e}); trying an older one")
            continue
        log(f"resuming from {path.name} after {epoch} completed epoch(s)")
        return epoch, state
    return 0, None


def save_model(torch: Any, paths: sm.Paths, model: Any, hp: sm.Hyperparameters,
               epochs_done: int, val_dice: Optional[float], world_size: int) -> None:
    cpu_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    sm.atomic_write(paths.model_dir / "model.pt", lambda f: torch.save(cpu_state, f))
    info = {
        "architecture": "unet2d",
        "in_channels": IN_CHANNELS,
        "base_channels": hp.base_channels,
        "image_size": hp.image_size,
        "input": "RGB scaled to 0..1, resized to image_size x image_size",
        "output": "one logit per pixel; vessel where logit > 0",
        "epochs": epochs_done,
        "val_dice": val_dice,
        "world_size": world_size,
        "hyperparameters": sm.hyperparameters_dict(hp),
    }
    sm.atomic_write(paths.model_dir / "model.json", (json.dumps(info, indent=2) + "\n").encode())
    log(f"model written to {paths.model_dir / 'model.pt'}")


def state_digest(torch: Any, state: Dict[str, Any]) -> str:
    """SHA-256 over a state_dict's names, dtypes, shapes and bytes (equal states, equal digests)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().clone()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Several processes: one per GPU on each host, one on a CPU-only host


def run_local_workers(cluster: sm.Cluster, term: sm.TerminationHandler) -> int:
    """Start this host's ``processes_per_host`` training processes (this program again, with
    ``SAGETRAIN_LOCAL_RANK`` set), pass SIGTERM on to them and wait for all of them.

    Returns 0 when all succeed, 143 after a stop, else the status of the first that failed (it
    wrote the failure file); the others are then stopped.
    """
    argv = [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]]
    workers = []
    for local_rank in range(cluster.processes_per_host):
        env = dict(os.environ, **{LOCAL_RANK_ENV_VAR: str(local_rank)})
        workers.append(subprocess.Popen(argv, env=env))
    log(f"host {cluster.current_host}: started {len(workers)} training processes "
        f"(ranks {cluster.rank(0)}-{cluster.rank(len(workers) - 1)} of {cluster.world_size})")

    def signal_all(sig: int) -> None:
        for w in workers:
            if w.poll() is None:
                w.send_signal(sig)

    forwarded = False
    failed: Optional[Tuple[int, int]] = None  # (local rank, status)
    failed_at = 0.0
    while True:
        if term.requested and not forwarded:
            signal_all(signal.SIGTERM)
            forwarded = True
        codes = [w.poll() for w in workers]
        for local_rank, code in enumerate(codes):
            stopped = code in (sm.SIGTERM_EXIT_CODE, -signal.SIGTERM) and forwarded
            if code not in (None, 0) and not stopped and failed is None:
                failed, failed_at = (local_rank, code), time.monotonic()
                signal_all(signal.SIGTERM)  # the others cannot go on without it
        if all(code is not None for code in codes):
            break
        if failed is not None and time.monotonic() - failed_at > WORKER_GRACE_SECONDS:
            signal_all(signal.SIGKILL)
        time.sleep(0.1)
    if failed is not None:
        local_rank, code = failed
        if code < 0:
            raise sm.ContractError(f"training process {cluster.rank(local_rank)} (local rank "
                                   f"{local_rank}) was killed by signal {-code}")
        return code
    return sm.SIGTERM_EXIT_CODE if forwarded or any(codes) else 0


class Ranks:
    """This process's place in the training, and the collectives training needs.

    With one process in all (``world_size == 1``) there is no process group and every collective
    is the identity, so a single GPU or CPU trains exactly as a plain loop would.
    """

    def __init__(self, torch: Any, cluster: sm.Cluster, local_rank: int, device: Any):
        self.torch = torch
        self.cluster = cluster
        self.local_rank = local_rank
        self.rank = cluster.rank(local_rank)
        self.world_size = cluster.world_size
        self.device = device
        self.distributed = self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self) -> None:
        if not self.distributed:
            return
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        c = self.cluster
        log(f"joining the rendezvous at {c.master_addr}:{c.master_port} ({backend}, "
            f"{len(c.hosts)} host(s) x {c.processes_per_host} process(es))")
        self.torch.distributed.init_process_group(
            backend, init_method=f"tcp://{c.master_addr}:{c.master_port}", rank=self.rank,
            world_size=self.world_size, timeout=datetime.timedelta(seconds=RENDEZVOUS_SECONDS))

    def close(self) -> None:
        dist = self.torch.distributed
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def _tensor(self, values: List[float]) -> Any:
        return self.torch.tensor(values, dtype=self.torch.float64, device=self.device)

    def sum(self, values: List[float]) -> List[float]:
        if not self.distributed:
            return values
        t = self._tensor(values)
        self.torch.distributed.all_reduce(t, op=self.torch.distributed.ReduceOp.SUM)
        return t.tolist()

    def max(self, values: List[float]) -> List[float]:
        if not self.distributed:
            return values
        t = self._tensor(values)
        self.torch.distributed.all_reduce(t, op=self.torch.distributed.ReduceOp.MAX)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.max([1.0 if flag else 0.0])[0] > 0

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        self.torch.distributed.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def broadcast_buffers(self, model: Any) -> None:
        """Rank 0's BatchNorm statistics on every rank (DDP syncs them only before a forward)."""
        if self.distributed:
            for b in model.buffers():
                self.torch.distributed.broadcast(b, src=0)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def shard_order(torch: Any, n: int, replicas: int, shard_rank: int, epoch: int,
                steps: int, batch_size: int) -> List[int]:
    """This rank's sample indices for one epoch, in order: a DistributedSampler's shuffled share
    (the same shuffle on every rank), repeated when needed so that the rank has ``steps`` batches
    like every other (ranks must take the same number of steps; only sharded data differ)."""
    sampler = torch.utils.data.DistributedSampler(range(n), num_replicas=replicas,
                                                  rank=shard_rank, shuffle=True, seed=SEED)
    sampler.set_epoch(epoch)
    order = list(sampler)
    if order and ceil_div(len(order), batch_size) < steps:
        order = (order * (steps * batch_size // len(order) + 1))[:steps * batch_size]
    return order


# --------------------------------------------------------------------------------------------
# Training


def main() -> Optional[int]:
    global _log_prefix
    term = sm.TerminationHandler().install()
    paths = sm.Paths.from_env()
    # `sagetrain train --secret NAME=...`: the job gets the ARN only; read the values here.
    sm.export_secrets()
    # Everything that can be checked without torch is checked first, so that bad input fails
    # fast and the same way whether or not torch is importable.
    hp = sm.load_hyperparameters(paths)
    extensions = sm.PIL_EXTENSIONS
    try:
        import PIL  # noqa: F401
    except ImportError:
        extensions = sm.PNG_EXTENSIONS
    channels = sm.discover_channels(paths, extensions=extensions)
    torch = import_torch()

    job = os.environ.get("TRAINING_JOB_NAME", "(local run)")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cluster = sm.cluster_from_config(sm.read_resource_config(paths), gpus)
    raw_local_rank = os.environ.get(LOCAL_RANK_ENV_VAR)
    if cluster.processes_per_host > 1 and raw_local_rank is None:
        return run_local_workers(cluster, term)
    local_rank = int(raw_local_rank or 0)
    if gpus:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cudnn.benchmark = True
    else:
        device = torch.device("cpu")
        if cluster.processes_per_host > 1 and "OMP_NUM_THREADS" not in os.environ:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // cluster.processes_per_host))
    ranks = Ranks(torch, cluster, local_rank, device)
    if ranks.distributed:
        _log_prefix = f"[train rank {ranks.rank}/{ranks.world_size}]"
    try:
        return train(torch, paths, hp, channels, ranks, term, job)
    finally:
        ranks.close()


def train(torch: Any, paths: sm.Paths, hp: sm.Hyperparameters, channels: sm.Channels,
          ranks: Ranks, term: sm.TerminationHandler, job: str) -> None:
    device, cluster = ranks.device, ranks.cluster
    log(f"job {job}: {hp}, device {device}, {len(channels.train)} training and "
        f"{len(channels.validation or [])} validation samples on host {cluster.current_host}")

    torch.manual_seed(SEED)
    start = time.monotonic()
    x_train, y_train = load_samples(torch, channels.train, hp.image_size)
    x_val = y_val = None
    if channels.validation:
        x_val, y_val = load_samples(torch, channels.validation, hp.image_size)
    log(f"data loaded in {time.monotonic() - start:.1f}s")
    term.check()
    ranks.init()

    model = build_unet(torch, base=hp.base_channels).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate)
    # Rank 0 reads the checkpoint (only it writes them); every rank resumes from its state.
    done, state = resume(torch, paths, model, optimizer, hp) if ranks.is_main else (0, None)
    done, state = ranks.broadcast((done, state))
    if state is not None and not ranks.is_main:
        apply_state(torch, state, model, optimizer, hp)
        log(f"resuming from rank 0's checkpoint after {done} completed epoch(s)")
    del state
    if done >= hp.epochs:
        log(f"the checkpoint already has {done} epoch(s) of {hp.epochs}; writing the model")
    net = model
    if ranks.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    # FullyReplicated (sagetrain's): every host has every sample and each rank takes a 1/world
    # share. ShardedByS3Key: the host's files are already its share, split among its processes.
    def share(channel: str) -> Tuple[int, int]:
        if sm.channel_distribution(paths, channel) == "ShardedByS3Key":
            return cluster.processes_per_host, ranks.local_rank
        return ranks.world_size, ranks.rank

    n = x_train.shape[0]
    replicas, shard_rank = share(sm.TRAIN_CHANNEL)
    # Every rank must take the same number of steps: the most any rank needs.
    steps = int(ranks.max([float(ceil_div(ceil_div(n, replicas), hp.batch_size))])[0])
    val_idx = None
    if x_val is not None:
        val_replicas, val_rank = share(sm.VALIDATION_CHANNEL)
        val_idx = torch.arange(val_rank, x_val.shape[0], val_replicas)

    def stop_point(save: Optional[Callable[[], Any]] = None) -> None:
        """Stop every rank at the same step once any rank got SIGTERM; rank 0 saves first.

        With several ranks only the agreed flag counts: a SIGTERM that arrives after the vote
        is acted on at the next stop point, by every rank."""
        if not ranks.distributed:
            term.check(save)
            return
        if ranks.any(term.requested):
            if not term.requested:
                log("another rank received SIGTERM; stopping")
                term.requested = True
            term.check(save if ranks.is_main else None)

    val_dice: Optional[float] = None
    for epoch in range(done + 1, hp.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        order = shard_order(torch, n, replicas, shard_rank, epoch, steps, hp.batch_size)
        flips = torch.Generator().manual_seed(SEED + 100_003 * epoch + ranks.rank)
        for step in range(steps):
            # A stop mid-epoch keeps the progress made so far; the epoch restarts on resume.
            stop_point(lambda: save_state(torch, paths, epoch - 1, model, optimizer, hp))
            idx = torch.tensor(order[step * hp.batch_size:(step + 1) * hp.batch_size],
                               dtype=torch.long)
            xb, yb = x_train[idx], y_train[idx]
            if torch.rand((), generator=flips) < 0.5:
                xb, yb = xb.flip(-1), yb.flip(-1)
            if torch.rand((), generator=flips) < 0.5:
                xb, yb = xb.flip(-2), yb.flip(-2)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = dice_bce_loss(torch, net(xb), yb)
            loss.backward()  # DDP averages the gradients of all ranks here
            optimizer.step()
            total += float(loss.detach()) * xb.shape[0]
            seen += xb.shape[0]
        ranks.broadcast_buffers(model)
        total, seen = ranks.sum([total, float(seen)])
        train_loss = total / max(seen, 1)
        if ranks.is_main:
            save_state(torch, paths, epoch, model, optimizer, hp)
        if x_val is not None:
            check = term.check if not ranks.distributed else (lambda: None)
            val_dice = evaluate_dice(torch, model, x_val[val_idx], y_val[val_idx],
                                     hp.batch_size, device, check, ranks.sum)
        if ranks.is_main:
            sm.emit_metrics(epoch, train_loss, val_dice)
        stop_point()

    epochs_done = max(done, hp.epochs)
    if ranks.is_main:
        save_model(torch, paths, model, hp, epochs_done, val_dice, ranks.world_size)
    digest_dir = os.environ.get(DIGEST_DIR_ENV_VAR)
    if digest_dir:  # tests only: every rank's final state, to compare across ranks
        record = {"rank": ranks.rank, "world_size": ranks.world_size, "resumed_epochs": done,
                  "epochs": epochs_done, "steps_per_epoch": steps,
                  "digest": state_digest(torch, model.state_dict())}
        sm.atomic_write(Path(digest_dir) / f"rank-{ranks.rank}.json",
                        (json.dumps(record) + "\n").encode())


if __name__ == "__main__":
    sm.run(main)
