"""The SageMaker training-container contract, standard library only.

Everything a training program needs to behave as SageMaker expects, kept free of torch and
numpy so that it can be tested anywhere (``tests/test_contract.py``):

* **Directories.** Everything lives under ``/opt/ml``. Set the environment variable
  ``SM_ROOT`` to use another root, e.g. to run the container or ``train.py`` locally::

      SM_ROOT=/tmp/ml python train.py train

  SageMaker itself never sets ``SM_ROOT`` (it sets only ``TRAINING_JOB_NAME``,
  ``TRAINING_JOB_ARN`` and the job's Environment), so in a real job the root is ``/opt/ml``.

  ======================================  ==============================================
  ``input/config/hyperparameters.json``   hyperparameters; every value is a string
  ``input/config/inputdataconfig.json``   channels and their input mode (optional here)
  ``input/config/resourceconfig.json``    ``current_host`` and ``hosts`` (optional here)
  ``input/data/<channel>/``               channel data (``train`` required, ``validation``
                                          optional)
  ``model/``                              uploaded as ``<output_path>/<job>/output/model.tar.gz``
  ``output/failure``                      the failure reason (SageMaker keeps 1024 chars)
  ``output/data/``                        uploaded as ``output.tar.gz``
  ``checkpoints/``                        synced to ``checkpoint_s3`` and restored at start
  ======================================  ==============================================

* **Several hosts.** :func:`cluster_from_config` turns ``resourceconfig.json`` and the GPU
  count into a :class:`Cluster` (ranks, rendezvous on the first host); :func:`channel_distribution`
  tells whether a channel is ``FullyReplicated`` or ``ShardedByS3Key``.

* **Hyperparameters.** :func:`load_hyperparameters` turns the string values into a typed
  :class:`Hyperparameters`; unknown keys are ignored with a warning on stderr; invalid values
  raise :class:`HyperparameterError`, which names every bad key.

* **Data layout.** Each channel holds two folders of files paired by name (file name without
  extension)::

      input/data/train/images/NAME.png      input/data/train/masks/NAME.png
      input/data/validation/images/...      input/data/validation/masks/...

  Accepted extensions: ``.png`` (always), and ``.jpg .jpeg .tif .tiff .bmp .gif`` when Pillow
  is installed. A file without its partner is an error that lists the unmatched names.
  Hidden files are skipped; other files are reported on stderr and skipped.

* **Exit status and failures.** :func:`run` wraps the program: exit 0 means Completed; any
  exception writes ``output/failure`` (at most 1024 bytes) and exits 1, which SageMaker shows
  as the job's FailureReason. The full traceback goes to stderr (CloudWatch Logs).

* **Checkpoints.** :func:`save_checkpoint` writes ``checkpoints/checkpoint-epoch-NNNN.ckpt``
  atomically (temporary file, fsync, rename); the payload is bytes or a callback that writes
  to a binary file object (e.g. ``lambda f: torch.save(state, f)``). ``NNNN`` is the number of
  completed epochs. :func:`latest_checkpoint` finds the one to resume from.

* **Metrics.** :func:`format_metrics` makes the one fixed line per epoch that the job's
  metric definitions (``[metrics]`` in ``sagetrain.toml``) parse from the logs::

      epoch=3 train_loss=0.41 val_dice=0.77

  ``epoch`` is an integer, the other values use Python's ``.6g`` format (``0.41``,
  ``0.000123``, ``1.5e-07``), fields are separated by one space, and ``val_dice`` is left out
  when there is no validation channel.

* **Secrets.** ``sagetrain train --secret NAME=SECRET_ID`` sends only the secret's ARN, as
  ``SAGETRAIN_SECRET_<NAME>=ARN[:json-key]``. :func:`export_secrets` reads each one from AWS
  Secrets Manager with the execution role (boto3 when the image has it, else the AWS CLI) and
  sets ``NAME``; in code mode sagetrain's launcher has done so already, and it does nothing.

* **Stopping.** On StopTrainingJob, MaxRuntime or a spot interruption SageMaker sends SIGTERM
  and SIGKILL 120 s later. :class:`TerminationHandler` records SIGTERM so that the trainer can
  save a checkpoint at the next safe point and exit with status 143 (128 + SIGTERM); no
  failure file is written for a stop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, NoReturn, Optional, Sequence, Tuple, Union

DEFAULT_ROOT = "/opt/ml"
ROOT_ENV_VAR = "SM_ROOT"

#: SageMaker keeps the first 1024 characters of ``output/failure``.
MAX_FAILURE_LENGTH = 1024

#: Exit status after a SIGTERM stop: 128 + signal number, as shells report it.
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM

TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
IMAGES_DIR = "images"
MASKS_DIR = "masks"
PNG_EXTENSIONS = frozenset({".png"})
PIL_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"})

CHECKPOINT_PREFIX = "checkpoint-epoch-"
CHECKPOINT_SUFFIX = ".ckpt"
_CHECKPOINT_RE = re.compile(r"^checkpoint-epoch-(\d{1,9})\.ckpt$")

LOG_PREFIX = "[contract]"


def warn(message: str) -> None:
    """A warning on stderr (it ends up in CloudWatch Logs)."""
    print(f"{LOG_PREFIX} warning: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Errors


class ContractError(Exception):
    """A problem with the job's inputs or the container's environment.

    Its message is written to the failure file as is (no exception type in front).
    """


class HyperparameterError(ContractError):
    """One or more invalid hyperparameters; ``problems`` maps each key to its reason."""

    def __init__(self, problems: Dict[str, str]):
        self.problems = dict(problems)
        parts = [f'hyperparameter "{k}": {v}' for k, v in self.problems.items()]
        super().__init__("invalid hyperparameters: " + "; ".join(parts))


class ChannelError(ContractError):
    """A missing or malformed data channel."""


# --------------------------------------------------------------------------------------------
# Directories


@dataclass(frozen=True)
class Paths:
    """The container's directories under one root (``/opt/ml`` or ``$SM_ROOT``)."""

    root: Path

    @classmethod
    def from_env(cls, environ: Optional[Dict[str, str]] = None) -> "Paths":
        env = os.environ if environ is None else environ
        return cls(Path(env.get(ROOT_ENV_VAR) or DEFAULT_ROOT))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel_dir(self, name: str) -> Path:
        return self.data_dir / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ContractError(f"cannot read {what} {path}: {e.strerror or e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ContractError(f"{what} {path} is not valid JSON: {e}") from e


def read_resource_config(paths: Paths) -> Optional[Dict[str, Any]]:
    """``resourceconfig.json`` (``current_host``, ``hosts``, ...), or None outside SageMaker."""
    if not paths.resource_config_file.is_file():
        return None
    data = _read_json(paths.resource_config_file, "resource config")
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------------------------
# Several hosts

#: The rendezvous port on the first host; ``MASTER_PORT`` overrides it.
RENDEZVOUS_PORT = 29500
#: Rendezvous address override (``MASTER_ADDR`` too); SageMaker sets neither.
MASTER_ADDR_ENV_VARS = ("SAGETRAIN_MASTER_ADDR", "MASTER_ADDR")
MASTER_PORT_ENV_VAR = "MASTER_PORT"
#: Processes per host; the default is one per GPU, or one on a CPU-only host.
PROCESSES_PER_HOST_ENV_VAR = "SAGETRAIN_PROCESSES_PER_HOST"


@dataclass(frozen=True)
class Cluster:
    """Who trains: ``processes_per_host`` processes on each of ``hosts`` (sorted).

    Ranks are numbered host by host: the first host (``hosts[0]``) has ranks
    ``0 .. processes_per_host - 1`` and runs the rendezvous at ``master_addr:master_port``.
    """

    hosts: Tuple[str, ...]
    current_host: str
    processes_per_host: int
    master_addr: str
    master_port: int

    @property
    def host_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def world_size(self) -> int:
        return len(self.hosts) * self.processes_per_host

    def rank(self, local_rank: int) -> int:
        return self.host_rank * self.processes_per_host + local_rank


def cluster_from_config(resources: Optional[Dict[str, Any]], gpus: int,
                        environ: Optional[Dict[str, str]] = None) -> Cluster:
    """The cluster from ``resourceconfig.json`` (None: one local host) and this host's GPUs.

    Every host of a SageMaker training job has the same instance type, so each runs as many
    processes as this one has GPUs (one without GPUs), unless ``SAGETRAIN_PROCESSES_PER_HOST``
    says otherwise. The rendezvous is the first of the sorted ``hosts`` on port 29500;
    ``SAGETRAIN_MASTER_ADDR`` (or ``MASTER_ADDR``) and ``MASTER_PORT`` replace them.
    """
    env = os.environ if environ is None else environ
    if resources is None:
        hosts: List[str] = []
        current = ""
    else:
        raw_hosts = resources.get("hosts")
        current = resources.get("current_host")
        if (not isinstance(raw_hosts, list) or not raw_hosts
                or not all(isinstance(h, str) and h for h in raw_hosts)):
            raise ContractError(f"resourceconfig.json: 'hosts' must be a non-empty list of host "
                                f"names, not {raw_hosts!r}")
        if not isinstance(current, str) or current not in raw_hosts:
            raise ContractError(f"resourceconfig.json: 'current_host' {current!r} is not one of "
                                f"'hosts' {raw_hosts!r}")
        hosts = sorted(set(raw_hosts))
    if not hosts:
        hosts, current = ["localhost"], "localhost"

    raw = env.get(PROCESSES_PER_HOST_ENV_VAR, "").strip()
    if raw:
        try:
            per_host = _parse_positive_int(raw)
        except ValueError as e:
            raise ContractError(f"{PROCESSES_PER_HOST_ENV_VAR}: {e}") from None
        if gpus and per_host > gpus:
            raise ContractError(f"{PROCESSES_PER_HOST_ENV_VAR}={per_host} but this host has only "
                                f"{gpus} GPU(s)")
    else:
        per_host = max(gpus, 1)

    addr = next((env[v].strip() for v in MASTER_ADDR_ENV_VARS if env.get(v, "").strip()), "")
    if not addr:
        addr = hosts[0] if len(hosts) > 1 else "127.0.0.1"
    raw_port = env.get(MASTER_PORT_ENV_VAR, "").strip()
    port = RENDEZVOUS_PORT
    if raw_port:
        if not _INT_RE.match(raw_port) or not 1 <= int(raw_port) <= 65535:
            raise ContractError(f"{MASTER_PORT_ENV_VAR}={raw_port!r} is not a port number")
        port = int(raw_port)
    return Cluster(tuple(hosts), current, per_host, addr, port)


def channel_distribution(paths: Paths, name: str) -> str:
    """The channel's ``S3DistributionType`` from ``inputdataconfig.json``: ``FullyReplicated``
    (every host has all the files; the default) or ``ShardedByS3Key`` (each host has a share)."""
    if not paths.input_data_config_file.is_file():
        return "FullyReplicated"
    data = _read_json(paths.input_data_config_file, "input data config")
    cfg = data.get(name) if isinstance(data, dict) else None
    value = cfg.get("S3DistributionType") if isinstance(cfg, dict) else None
    return value if value == "ShardedByS3Key" else "FullyReplicated"


# --------------------------------------------------------------------------------------------
# Hyperparameters


@dataclass(frozen=True)
class Hyperparameters:
    """The trainer's hyperparameters. SageMaker sends every value as a plain string."""

    epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 1e-3
    image_size: int = 256
    base_channels: int = 16


_INT_RE = re.compile(r"^\+?[0-9]+$")


def _parse_positive_int(raw: str) -> int:
    if not _INT_RE.match(raw):
        raise ValueError(f"{raw!r} is not a whole number")
    value = int(raw)
    if value < 1:
        raise ValueError(f"{raw!r} must be at least 1")
    return value


def _parse_positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{raw!r} must be a finite number greater than 0")
    return value


def _parse_image_size(raw: str) -> int:
    value = _parse_positive_int(raw)
    if value < 32 or value % 16:
        raise ValueError(f"{raw!r} must be a multiple of 16 and at least 32 (the U-Net halves "
                         f"the image 4 times)")
    return value


_PARSERS: Dict[str, Callable[[str], Any]] = {
    "epochs": _parse_positive_int,
    "batch_size": _parse_positive_int,
    "learning_rate": _parse_positive_float,
    "image_size": _parse_image_size,
    "base_channels": _parse_positive_int,
}


def parse_hyperparameters(raw: Any) -> Hyperparameters:
    """Typed hyperparameters from the decoded ``hyperparameters.json`` object.

    Values are expected as strings (SageMaker sends nothing else); JSON numbers are accepted
    too for hand-written local files. Unknown keys are ignored with a warning on stderr.
    """
    if not isinstance(raw, dict):
        raise ContractError(f"hyperparameters.json must hold a JSON object, not {type(raw).__name__}")
    values: Dict[str, Any] = {}
    problems: Dict[str, str] = {}
    unknown = sorted(k for k in raw if k not in _PARSERS)
    if unknown:
        warn("ignoring unknown hyperparameters: " + ", ".join(unknown)
             + f" (known: {', '.join(_PARSERS)})")
    for key, parse in _PARSERS.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems[key] = f"expected a string, got JSON {type(value).__name__} {value!r}"
            continue
        text = str(value).strip()
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
            problems[key] = (f"{value!r} is quoted; send the plain value (the SageMaker Python "
                             f"SDK JSON-encodes strings, sagetrain does not)")
            continue
        try:
            values[key] = parse(text)
        except ValueError as e:
            problems[key] = str(e)
    if problems:
        raise HyperparameterError(problems)
    return Hyperparameters(**values)


def load_hyperparameters(paths: Paths) -> Hyperparameters:
    """Read ``input/config/hyperparameters.json``; all defaults if the file is absent."""
    if not paths.hyperparameters_file.exists():
        warn(f"{paths.hyperparameters_file} not found; using default hyperparameters")
        return Hyperparameters()
    return parse_hyperparameters(_read_json(paths.hyperparameters_file, "hyperparameters file"))


def hyperparameters_dict(hp: Hyperparameters) -> Dict[str, Any]:
    return dataclasses.asdict(hp)


# --------------------------------------------------------------------------------------------
# Channels


@dataclass(frozen=True)
class Sample:
    """One image and its mask, paired by name."""

    name: str
    image: Path
    mask: Path


@dataclass(frozen=True)
class Channels:
    train: List[Sample]
    validation: Optional[List[Sample]]


def _show(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _input_modes(paths: Paths) -> Dict[str, str]:
    if not paths.input_data_config_file.is_file():
        return {}
    data = _read_json(paths.input_data_config_file, "input data config")
    if not isinstance(data, dict):
        return {}
    return {name: str(cfg.get("TrainingInputMode", ""))
            for name, cfg in data.items() if isinstance(cfg, dict)}


def _scan_folder(folder: Path, extensions: frozenset) -> Tuple[Dict[str, Path], List[str], List[str]]:
    """Files by name (stem); duplicate names; skipped entries."""
    by_name: Dict[str, Path] = {}
    duplicates: List[str] = []
    skipped: List[str] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_file() or entry.suffix.lower() not in extensions:
            skipped.append(entry.name + ("/" if entry.is_dir() else ""))
            continue
        if entry.stem in by_name:
            duplicates.append(entry.stem)
            continue
        by_name[entry.stem] = entry
    return by_name, duplicates, skipped


def discover_channel(paths: Paths, name: str, required: bool,
                     extensions: frozenset = PIL_EXTENSIONS) -> Optional[List[Sample]]:
    """The image/mask pairs of one channel, sorted by name; None if optional and absent."""
    cdir = paths.channel_dir(name)
    layout = (f"expected {cdir}/{IMAGES_DIR}/NAME.png with {cdir}/{MASKS_DIR}/NAME.png "
              f"for each sample")
    mode = _input_modes(paths).get(name, "")
    if mode == "Pipe":
        raise ChannelError(f"channel '{name}' uses Pipe input mode; this trainer reads files: "
                           f"use File or FastFile")
    if not cdir.is_dir():
        if not required:
            return None
        present = sorted(p.name for p in paths.data_dir.iterdir()) if paths.data_dir.is_dir() else []
        raise ChannelError(
            f"required channel '{name}' not found at {cdir} (channels present: "
            f"{', '.join(present) or 'none'}); give the job a '{name}' channel")
    images_dir, masks_dir = cdir / IMAGES_DIR, cdir / MASKS_DIR
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise ChannelError(f"channel '{name}': folder {d.name}/ is missing; {layout}")
    images, dup_i, skip_i = _scan_folder(images_dir, extensions)
    masks, dup_m, skip_m = _scan_folder(masks_dir, extensions)
    skipped = [f"{IMAGES_DIR}/{s}" for s in skip_i] + [f"{MASKS_DIR}/{s}" for s in skip_m]
    if skipped:
        warn(f"channel '{name}': skipping {len(skipped)} entries that are not image files "
             f"({', '.join(sorted(extensions))}): {_show(skipped)}")
    problems = []
    if dup_i or dup_m:
        problems.append("several files share a name: " + _show(sorted(set(dup_i + dup_m))))
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if no_mask:
        problems.append(f"{len(no_mask)} image(s) without a mask in {MASKS_DIR}/: {_show(no_mask)}")
    if no_image:
        problems.append(f"{len(no_image)} mask(s) without an image in {IMAGES_DIR}/: "
                        f"{_show(no_image)}")
    if problems:
        raise ChannelError(f"channel '{name}': " + "; ".join(problems) + f" ({layout})")
    if not images:
        raise ChannelError(f"channel '{name}' has no image files; {layout}")
    return [Sample(n, images[n], masks[n]) for n in sorted(images)]


def discover_channels(paths: Paths, extensions: frozenset = PIL_EXTENSIONS) -> Channels:
    """``train`` (required) and ``validation`` (optional); other channels are reported."""
    if paths.data_dir.is_dir():
        others = sorted(p.name for p in paths.data_dir.iterdir()
                        if p.name not in (TRAIN_CHANNEL, VALIDATION_CHANNEL)
                        and not p.name.startswith("."))
        if others:
            warn(f"ignoring channels this trainer does not use: {', '.join(others)}")
    train = discover_channel(paths, TRAIN_CHANNEL, required=True, extensions=extensions)
    validation = discover_channel(paths, VALIDATION_CHANNEL, required=False, extensions=extensions)
    assert train is not None
    return Channels(train=train, validation=validation)


# --------------------------------------------------------------------------------------------
# Failure reporting and the entry point


def truncate_reason(text: str, limit: int = MAX_FAILURE_LENGTH) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (so also ``limit`` characters).

    The head is kept, because that is what SageMaker keeps; a cut is marked with ``...``.
    """
    text = text.strip() or "training failed (no reason given)"
    if len(text.encode("utf-8")) <= limit:
        return text
    marker = " ..."
    budget = limit - len(marker)
    cut = text.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut.rstrip() + marker


def failure_reason(exc: BaseException) -> str:
    """A one-paragraph reason for an exception: its message, and where it was raised."""
    if isinstance(exc, ContractError):
        reason = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        reason = "interrupted (SIGINT)"
    else:
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        tb = traceback.extract_tb(exc.__traceback__)
        if tb:
            last = tb[-1]
            reason += f" (at {Path(last.filename).name}:{last.lineno} in {last.name})"
    return reason


def write_failure(reason: str, paths: Optional[Paths] = None) -> Path:
    """Write the failure reason to ``output/failure`` (truncated); returns the file's path."""
    paths = paths or Paths.from_env()
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(truncate_reason(reason), encoding="utf-8")
    return paths.failure_file


def check_argv(argv: Sequence[str]) -> None:
    """SageMaker starts the container as ``docker run IMAGE train``: accept ``train`` or nothing,
    and the training toolkit's copy of the hyperparameters as ``--name value`` pairs (framework
    images and ``sagetrain train --local=host`` pass them; the values are read from
    ``hyperparameters.json`` all the same)."""
    args = list(argv)
    if args in ([], ["train"]):
        return
    pairs = args[1:] if args[:1] == ["train"] else args
    if len(pairs) % 2 == 0 and all(k.startswith("--") and len(k) > 2 for k in pairs[::2]):
        return
    if args[:1] == ["serve"]:
        raise ContractError("this image only trains; it was started with 'serve' (hosting an "
                            "endpoint needs an inference image)")
    raise ContractError(f"unexpected arguments {args!r}; SageMaker starts the container as "
                        f"`docker run IMAGE train`")


def execute(main_fn: Callable[[], Optional[int]], argv: Optional[Sequence[str]] = None,
            paths: Optional[Paths] = None) -> int:
    """Run ``main_fn`` under the contract and return the exit status.

    * returns normally: 0 (or the int it returned);
    * ``SystemExit`` with a number (e.g. 143 after SIGTERM): that number, no failure file;
    * ``SystemExit`` with a message, or any other exception (KeyboardInterrupt too): the
      reason goes to ``output/failure``, the traceback to stderr, and the status is 1.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        check_argv(argv)
        result = main_fn()
        return 0 if result is None else int(result)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        reason = str(e.code)
        print(reason, file=sys.stderr, flush=True)
    except BaseException as e:  # noqa: BLE001 - every failure must reach the failure file
        traceback.print_exc(file=sys.stderr)
        reason = failure_reason(e)
    try:
        path = write_failure(reason, paths)
        print(f"{LOG_PREFIX} failure reason written to {path}: {truncate_reason(reason)}",
              file=sys.stderr, flush=True)
    except OSError as e:
        print(f"{LOG_PREFIX} could not write the failure file: {e}", file=sys.stderr, flush=True)
    return 1


def run(main_fn: Callable[[], Optional[int]], argv: Optional[Sequence[str]] = None,
        paths: Optional[Paths] = None) -> NoReturn:
    """:func:`execute`, then exit the process with its status."""
    sys.stdout.flush()
    code = execute(main_fn, argv, paths)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


# --------------------------------------------------------------------------------------------
# Secrets (`sagetrain train --secret NAME=SECRET_ID`)

SECRET_ENV_PREFIX = "SAGETRAIN_SECRET_"


def _read_secret(arn: str, region: str) -> str:
    """The secret's string, read with the execution role: boto3, else the AWS CLI."""
    try:
        import boto3  # type: ignore[import-not-found]
    except ImportError:
        boto3 = None
    if boto3 is not None:
        client = boto3.client("secretsmanager", region_name=region)
        return client.get_secret_value(SecretId=arn)["SecretString"]
    import shutil
    import subprocess
    if shutil.which("aws") is None:
        raise ContractError(f"cannot read the secret {arn}: the image has neither boto3 "
                            f"(pip install boto3) nor the AWS CLI")
    out = subprocess.run(["aws", "secretsmanager", "get-secret-value", "--secret-id", arn,
                          "--region", region, "--query", "SecretString", "--output", "json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        raise ContractError(f"aws secretsmanager get-secret-value on {arn} failed: {last}; "
                            f"the execution role needs secretsmanager:GetSecretValue on it")
    return json.loads(out.stdout)


def export_secrets(environ: Optional[Dict[str, str]] = None,
                   read: Callable[[str, str], str] = _read_secret) -> List[str]:
    """Set ``NAME`` for each ``SAGETRAIN_SECRET_<NAME>=ARN[:json-key]``, unless it is set
    already (by sagetrain's launcher in code mode). Returns the names set; never prints a value.
    """
    env = os.environ if environ is None else environ
    done = []
    for var, ref in sorted(env.items()):
        name = var[len(SECRET_ENV_PREFIX):]
        if not var.startswith(SECRET_ENV_PREFIX) or not name or name in env:
            continue
        parts = ref.split(":")
        if len(parts) < 7 or parts[2] != "secretsmanager":
            raise ContractError(f"{var} is not a secret ARN")
        arn, key = ":".join(parts[:7]), (parts[7] if len(parts) > 7 else None)
        value: Any = read(arn, parts[3])
        if key is not None:
            try:
                value = json.loads(value)[key]
            except (ValueError, KeyError, TypeError):
                raise ContractError(f"the secret {arn} has no JSON key {key}") from None
            if not isinstance(value, str):
                value = json.dumps(value)
        env[name] = value
        done.append(name)
        print(f"{LOG_PREFIX} secret {name} read from {arn}", file=sys.stderr, flush=True)
    return done


# --------------------------------------------------------------------------------------------
# Checkpoints

Payload = Union[bytes, bytearray, memoryview, Callable[[IO[bytes]], Any]]


def checkpoint_name(epoch: int) -> str:
    return f"{CHECKPOINT_PREFIX}{epoch:04d}{CHECKPOINT_SUFFIX}"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, payload: Payload) -> Path:
    """Write bytes (or let a callback write to a binary file) to a temporary file next to
    ``path``, fsync it, then rename it over ``path``: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            if callable(payload):
                payload(f)
            else:
                f.write(bytes(payload))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def list_checkpoints(paths: Paths) -> List[Tuple[int, Path]]:
    """Complete checkpoints as (completed epochs, path), oldest first."""
    if not paths.checkpoint_dir.is_dir():
        return []
    found = []
    for entry in paths.checkpoint_dir.iterdir():
        m = _CHECKPOINT_RE.match(entry.name)
        if m and entry.is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def latest_checkpoint(paths: Paths) -> Optional[Tuple[int, Path]]:
    """The checkpoint with the most completed epochs, or None."""
    found = list_checkpoints(paths)
    return found[-1] if found else None


def save_checkpoint(epoch: int, payload: Payload, paths: Optional[Paths] = None,
                    keep_last: Optional[int] = None) -> Path:
    """Atomically save the checkpoint taken after ``epoch`` completed epochs.

    ``keep_last`` removes all but that many newest checkpoints from the local folder (copies
    SageMaker already synced to S3 are not deleted there).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, not {epoch!r}")
    paths = paths or Paths.from_env()
    path = atomic_write(paths.checkpoint_dir / checkpoint_name(epoch), payload)
    if keep_last is not None and keep_last >= 1:
        for _, old in list_checkpoints(paths)[:-keep_last]:
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return path


def load_checkpoint(path: Path, reader: Optional[Callable[[IO[bytes]], Any]] = None) -> Any:
    """The checkpoint's bytes, or what ``reader`` returns for the open binary file."""
    with open(path, "rb") as f:
        return reader(f) if reader is not None else f.read()


# --------------------------------------------------------------------------------------------
# Metrics


def _metric_value(value: float) -> str:
    if isinstance(value, bool):
        raise TypeError("a metric value must be a number, not a bool")
    return format(float(value), ".6g")


def format_metrics(epoch: int, train_loss: float, val_dice: Optional[float] = None) -> str:
    """The fixed metric line, e.g. ``epoch=3 train_loss=0.41 val_dice=0.77``."""
    if isinstance(epoch, bool) or not isinstance(epoch, int):
        raise TypeError(f"epoch must be an int, not {epoch!r}")
    parts = [f"epoch={epoch}", f"train_loss={_metric_value(train_loss)}"]
    if val_dice is not None:
        parts.append(f"val_dice={_metric_value(val_dice)}")
    return " ".join(parts)


def emit_metrics(epoch: int, train_loss: float, val_dice: Optional[float] = None) -> str:
    """Print the metric line on stdout (flushed at once, so CloudWatch gets it) and return it."""
    line = format_metrics(epoch, train_loss, val_dice)
    print(line, flush=True)
    return line


# --------------------------------------------------------------------------------------------
# SIGTERM


class TerminationHandler:
    """Turns SIGTERM into "save a checkpoint, then exit 143".

    Two ways to use it:

    * polling (safe for training code): ``install()`` it, and call ``check(save)`` at points
      where the state is consistent (between batches); once SIGTERM has arrived, ``check``
      calls ``save`` and raises ``SystemExit(143)``;
    * immediate: ``TerminationHandler(on_terminate=save, immediate=True).install()`` calls
      ``save`` from the signal handler itself and exits; only for state that is always
      consistent.

    SageMaker sends SIGKILL 120 s after SIGTERM: keep the distance between checks and the
    checkpoint's write time well below that.
    """

    def __init__(self, on_terminate: Optional[Callable[[], Any]] = None, immediate: bool = False,
                 exit_code: int = SIGTERM_EXIT_CODE, signals: Sequence[int] = (signal.SIGTERM,)):
        self.on_terminate = on_terminate
        self.immediate = immediate
        self.exit_code = exit_code
        self.signals = tuple(signals)
        self.requested = False
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}
        self._exiting = False

    def install(self) -> "TerminationHandler":
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, _frame: Any) -> None:
        # os.write, not print: print from a signal handler can hit a reentrant buffered write.
        first = not self.requested
        self.requested = True
        self.signum = signum
        if first:
            os.write(2, f"{LOG_PREFIX} received signal {signum}: saving a checkpoint and "
                        f"stopping\n".encode())
        if self.immediate and first:
            self.check()

    def check(self, save: Optional[Callable[[], Any]] = None) -> None:
        """If a stop was requested: save (``save`` or ``on_terminate``) and exit."""
        if not self.requested or self._exiting:
            return
        self._exiting = True
        callback = save if save is not None else self.on_terminate
        if callback is not None:
            callback()
            os.write(2, f"{LOG_PREFIX} checkpoint saved; exiting with status "
                        f"{self.exit_code}\n".encode())
        raise SystemExit(self.exit_code)
