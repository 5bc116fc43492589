"""Checkpoints as msgpack files (`flax.serialization`, no pickle), written atomically.

A checkpoint is written to a temporary file in the target directory, flushed and fsync'ed, then moved
into place with `os.replace` (atomic on POSIX and Windows), so a crash or an interrupt mid-write never
leaves a truncated ``ckpt_*.msgpack``: the previous checkpoint stays the latest. msgpack holds only
arrays, numbers, strings, lists and dicts, so loading a checkpoint cannot execute code.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^ckpt_(\d{9})\.msgpack$")


def checkpoint_path(directory: str | os.PathLike, step: int) -> Path:
    """The file name of the checkpoint of `step` in `directory`."""
    return Path(directory) / f"ckpt_{step:09d}.msgpack"


def list_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(step, path), ...]`` of the complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), directory / name) for name in os.listdir(directory) if (m := _NAME.match(name))]
    return sorted(found)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest checkpoint in `directory`, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def save_checkpoint(directory: str | os.PathLike, step: int, tree: Any, *, keep: int = 3) -> Path:
    """Atomically writes `tree` (a pytree of arrays, numbers, strings) as the checkpoint of `step`.

    Args:
      directory: created if missing.
      step: the training step, part of the file name (``ckpt_000000120.msgpack``).
      tree: what to save; NamedTuples and dicts are stored as dicts (`flax.serialization.to_state_dict`).
      keep: how many of the newest checkpoints to keep; older ones are deleted after the write.

    Returns:
      The path written.
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"save_checkpoint: argument 'step' must be a non-negative int, got {step!r}")
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"save_checkpoint: argument 'keep' must be a positive int, got {keep!r}")
    from flax import serialization  # imported here: it costs `import jaxrnn` a noticeable fraction of a second

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = serialization.msgpack_serialize(serialization.to_state_dict(tree))
    final = checkpoint_path(directory, step)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-ckpt_", suffix=".msgpack")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)
    for _, old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(path: str | os.PathLike, target: Any = None) -> Any:
    """Reads a checkpoint; with `target` (a pytree of the saved structure) restores into its types.

    Without `target` the raw nested dicts of numpy arrays are returned (restore them later with
    `restore`).
    """
    from flax import serialization

    raw = serialization.msgpack_restore(Path(path).read_bytes())
    return raw if target is None else restore(target, raw)


def restore(target: Any, raw: Any) -> Any:
    """Rebuilds `target`'s pytree types (NamedTuples, optax states) from raw checkpoint dicts, as jax
    arrays with `target`'s dtypes."""
    import jax
    import jax.numpy as jnp
    from flax import serialization

    restored = serialization.from_state_dict(target, raw)
    return jax.tree.map(lambda t, r: jnp.asarray(r, dtype=jnp.asarray(t).dtype), target, restored)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on Windows.
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
