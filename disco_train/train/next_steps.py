"""What a finished training run leaves last: `summary.json` (its step count and losses, which `sweep` reads) and,
printed, its folder and the commands that use it (export, encode a training video, decode it)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from disco_train.io.files import atomic_write


def write_summary(out: Path, global_step: int, losses: list[float]) -> None:
    summary = {"steps": global_step, "first_loss": losses[0] if losses else None,
               "last_loss": losses[-1] if losses else None}
    atomic_write(out / "summary.json", json.dumps(summary) + "\n")


def read_steps(out: Path) -> str | None:
    """The optimizer steps a finished run reached (its summary.json), or None."""
    try:
        return str(json.loads((out / "summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def example_video(train_shards: str) -> tuple[str, str, dict]:
    """(the first video of the training data, its caption, the shards' prepare settings), read from the index, the
    settings and the captions file of the first shard folder; placeholders when they cannot be read."""
    from disco_train.config.prepare import flat_settings
    from disco_train.modalities import captions

    folder = Path(train_shards.split(",")[0]).parent
    try:
        video = json.loads((folder / "index.jsonl").open().readline())["video"]
        settings = flat_settings(json.loads((folder / "prepare_config.json").read_text()))
        caption = settings.get("caption_default") or "TEXT"
        if settings.get("captions"):
            table = captions.load(settings["captions"], settings["caption_key"], settings["caption_column"])
            caption = table.lookup(Path(video).name)[0] or caption
        return video, caption, settings
    except (OSError, ValueError, KeyError, TypeError):
        return "VIDEO", "TEXT", {}


def next_commands(cfg, out: Path, ckpt: str = "checkpoints/last.ckpt") -> str:
    """The run folder and, for a decoder, the three commands that export it, code a video and decode it."""
    lines = [f"run folder: {out} ({ckpt}, config.yaml, summary.json)"]
    if cfg.task != "disco_lora":
        return "\n".join(lines)
    video, caption, settings = example_video(cfg.data.train_shards)
    stem, export = Path(video).stem, f"exports/{cfg.name}"
    aux = {"sketch": f" sketch=auto send.sketch_weights={settings.get('sketch_weights', 'PATH')}",
           "pose": f" pose=auto send.pose_dir={settings.get('pose_dir', 'DIR')}"}.get(cfg.condition.aux, "")
    lines += ["next: export the adapter, code a training video with it, decode it:",
              f"  python -m disco_train export ckpt={out / ckpt} out={export}",
              f"  python -m disco_train encode {video} {out}/coded/{stem}.disco {shlex.quote(f'caption={caption}')} "
              f"export={export}{aux}",
              f"  python -m disco_train decode {out}/coded/{stem}.disco {out}/recons/{stem}.mkv export={export}"]
    return "\n".join(lines)
