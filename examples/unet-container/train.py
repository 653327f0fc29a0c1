#!/usr/bin/env python3
"""Train a small 2-D U-Net for binary vessel segmentation on SageMaker.

SageMaker runs ``docker run IMAGE train``; the Dockerfile's ENTRYPOINT is
``python /opt/program/train.py``, so this program gets the ``train`` argument (ignored) and
SIGTERM directly. Everything SageMaker-specific lives in ``sagemaker_contract.py``:

* hyperparameters ``epochs``, ``batch_size``, ``learning_rate``, ``image_size``;
* channels ``train`` (required) and ``validation`` (optional), each ``images/NAME.png`` +
  ``masks/NAME.png``; a mask pixel is vessel when its gray value is >= 128 (or 1 in 0/1 masks);
* resumes from the newest checkpoint in ``/opt/ml/checkpoints`` and saves one after every epoch
  (and on SIGTERM, then exits 143);
* prints ``epoch=N train_loss=X val_dice=Y`` after every epoch;
* writes ``model/model.pt`` (a state_dict) and ``model/model.json`` (how to rebuild the net);
* any error goes to ``/opt/ml/output/failure`` with exit status 1 -- including a missing torch.

Images are resized to ``image_size`` x ``image_size`` RGB and the whole data set is held in
memory, which suits vessel data sets (tens to a few hundred images).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

import pngio
import sagemaker_contract as sm

IN_CHANNELS = 3
BASE_CHANNELS = 16
SEED = 0
KEEP_CHECKPOINTS = 2
CHECKPOINT_FORMAT = 1


def log(message: str) -> None:
    print(f"[train] {message}", flush=True)


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
                  term: sm.TerminationHandler) -> float:
    """Dice of the thresholded prediction over the whole validation set (1.0 if both empty)."""
    model.eval()
    tp = fp = fn = 0.0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            term.check()
            pred = (model(x[i:i + batch_size].to(device)) > 0).float()
            target = y[i:i + batch_size].to(device)
            tp += float((pred * target).sum())
            fp += float((pred * (1 - target)).sum())
            fn += float(((1 - pred) * target).sum())
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


def resume(torch: Any, paths: sm.Paths, model: Any, optimizer: Any,
           hp: sm.Hyperparameters) -> int:
    """Load the newest readable checkpoint; returns the number of completed epochs."""
    for epoch, path in reversed(sm.list_checkpoints(paths)):
        try:
            # Load on the CPU: the RNG state must stay a CPU tensor; load_state_dict moves
            # the weights and the optimizer state to the model's device.
            state = sm.load_checkpoint(
                path, lambda f: torch.load(f, map_location="cpu", weights_only=True))
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
        except Exception as e:  # noqa: BLE001 - fall back to an older checkpoint
            sm.warn(f"cannot resume from {path.name} ({type(e).__name__}: {e}); trying an older one")
            continue
        for group in optimizer.param_groups:  # the job's learning rate wins over the saved one
            group["lr"] = hp.learning_rate
        log(f"resuming from {path.name} after {epoch} completed epoch(s)")
        return epoch
    return 0


def save_model(torch: Any, paths: sm.Paths, model: Any, hp: sm.Hyperparameters,
               epochs_done: int, val_dice: Optional[float]) -> None:
    cpu_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    sm.atomic_write(paths.model_dir / "model.pt", lambda f: torch.save(cpu_state, f))
    info = {
        "architecture": "unet2d",
        "in_channels": IN_CHANNELS,
        "base_channels": BASE_CHANNELS,
        "image_size": hp.image_size,
        "input": "RGB scaled to 0..1, resized to image_size x image_size",
        "output": "one logit per pixel; vessel where logit > 0",
        "epochs": epochs_done,
        "val_dice": val_dice,
        "hyperparameters": sm.hyperparameters_dict(hp),
    }
    sm.atomic_write(paths.model_dir / "model.json", (json.dumps(info, indent=2) + "\n").encode())
    log(f"model written to {paths.model_dir / 'model.pt'}")


# --------------------------------------------------------------------------------------------
# Training


def main() -> None:
    term = sm.TerminationHandler().install()
    paths = sm.Paths.from_env()
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
    resources = sm.read_resource_config(paths)
    if resources and len(resources.get("hosts", [])) > 1:
        sm.warn("this trainer is single-host; every host trains its own copy (use instance_count = 1)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    log(f"job {job}: {hp}, device {device}, {len(channels.train)} training and "
        f"{len(channels.validation or [])} validation samples")

    torch.manual_seed(SEED)
    start = time.monotonic()
    x_train, y_train = load_samples(torch, channels.train, hp.image_size)
    x_val = y_val = None
    if channels.validation:
        x_val, y_val = load_samples(torch, channels.validation, hp.image_size)
    log(f"data loaded in {time.monotonic() - start:.1f}s")
    term.check()

    model = build_unet(torch).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.learning_rate)
    done = resume(torch, paths, model, optimizer, hp)
    if done >= hp.epochs:
        log(f"the checkpoint already has {done} epoch(s) of {hp.epochs}; writing the model")

    val_dice: Optional[float] = None
    n = x_train.shape[0]
    for epoch in range(done + 1, hp.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        order = torch.randperm(n)
        for i in range(0, n, hp.batch_size):
            # A stop mid-epoch keeps the progress made so far; the epoch restarts on resume.
            term.check(lambda: save_state(torch, paths, epoch - 1, model, optimizer, hp))
            idx = order[i:i + hp.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            if torch.rand(()) < 0.5:
                xb, yb = xb.flip(-1), yb.flip(-1)
            if torch.rand(()) < 0.5:
                xb, yb = xb.flip(-2), yb.flip(-2)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            loss = dice_bce_loss(torch, model(xb), yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * xb.shape[0]
            seen += xb.shape[0]
        train_loss = total / max(seen, 1)
        save_state(torch, paths, epoch, model, optimizer, hp)
        if x_val is not None:
            val_dice = evaluate_dice(torch, model, x_val, y_val, hp.batch_size, device, term)
        sm.emit_metrics(epoch, train_loss, val_dice)
        term.check()

    save_model(torch, paths, model, hp, max(done, hp.epochs), val_dice)


if __name__ == "__main__":
    sm.run(main)
