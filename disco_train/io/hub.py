"""Where weights come from: a local path, or a Hugging Face repo id fetched into the Hub cache.

Every weight setting (model.path, model.text_encoder_path, sketch_weights, pose_dir, dcvc_rt_dir, sketch_dcvc_dir,
captioner, weights_dir, ...) takes either
- a local file or folder (the default: under `checkpoints/`), or
- a repo id: `org/name` (a folder: the repo's snapshot), `org/name/path/in/repo.ext` (one file), optionally with
  `@revision` after the name, or any of these behind `hf://` to leave no doubt. A first component that is an
  existing local folder (like `checkpoints/...`) always means a local path.
A repo id is downloaded with huggingface_hub into its cache when the Hub can be reached; offline
(`HF_HUB_OFFLINE=1`, or no network) only the cache is used, and a miss is a `MissingWeightsError` saying what to
fetch, with which command, and where the setting should then point.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

LOCAL_ROOTS = ("checkpoints", "data", "runs", "exports")
"""First path components that always mean a local path (the project's own folders), wherever the command runs."""
_REPO = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+?)(?:@(?P<rev>[\w./-]+?))?(?:/(?P<file>[^@]+))?")


class MissingWeightsError(FileNotFoundError):
    """A weight file or folder a setting needs is neither on disk nor fetchable; the message says what to do."""


@dataclass(frozen=True)
class RepoRef:
    repo: str
    revision: str | None
    filename: str | None


def repo_ref(spec: str) -> RepoRef | None:
    """The repo id a setting names, or None for a local path (see the module docstring)."""
    text = str(spec)
    explicit = text.startswith("hf://")
    text = text[len("hf://"):] if explicit else text
    first = text.split("/")[0]
    if not explicit and (text.startswith(("/", ".", "~")) or first in LOCAL_ROOTS or Path(first).is_dir()
                         or Path(text).exists()):
        return None
    match = _REPO.fullmatch(text)
    if match is None:
        return None
    return RepoRef(match["repo"], match["rev"], match["file"])


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def require_path(path: str | Path, what: str, key: str) -> Path:
    """`path`, which must exist on disk (a file or folder a loader reads)."""
    p = Path(path)
    if not p.exists():
        raise MissingWeightsError(
            f"{key}={path}: {what} not found. Put it there (see checkpoints/README.md for the expected layout) "
            f"or point {key} at it.")
    return p


def cached(ref: RepoRef) -> bool:
    """Whether the Hugging Face cache holds `ref` (nothing is downloaded)."""
    try:
        from huggingface_hub import snapshot_download, try_to_load_from_cache

        if ref.filename:
            return isinstance(try_to_load_from_cache(ref.repo, ref.filename, revision=ref.revision), str)
        snapshot_download(ref.repo, revision=ref.revision, local_files_only=True)
        return True
    except Exception:
        return False


def resolve_weights(spec: str | Path, key: str, what: str, patterns: list[str] | None = None) -> Path:
    """A local path that exists, fetched from the Hub when `spec` is a repo id. `patterns`: the files of a repo
    folder that are needed (e.g. ["transformer/*", "vae/*"]), so a 13B repo is not fetched whole."""
    ref = repo_ref(str(spec))
    if ref is None:
        path = Path(spec).expanduser()
        if not path.exists():
            raise MissingWeightsError(f"{key}={spec}: {what} not found. Put it there (checkpoints/README.md lists "
                                      f"the layout), point {key} at it, or give a Hugging Face repo id")
        return path
    return _fetch(ref, key, what, patterns)


def _fetch(ref: RepoRef, key: str, what: str, patterns: list[str] | None) -> Path:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # The cache folder is read now, not when huggingface_hub was imported, so HF_HUB_CACHE set later applies.
    kwargs = {"repo_id": ref.repo, "revision": ref.revision, "cache_dir": os.environ.get("HF_HUB_CACHE")}
    for local_only in ((True,) if offline() else (False, True)):
        try:
            if ref.filename:
                return Path(hf_hub_download(filename=ref.filename, local_files_only=local_only, **kwargs))
            return Path(snapshot_download(allow_patterns=patterns, local_files_only=local_only, **kwargs))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
            last = err
    target = f"checkpoints/{ref.repo.split('/')[-1]}"
    command = (f"huggingface-cli download {ref.repo} {ref.filename or ''}".rstrip() +
               (f" --revision {ref.revision}" if ref.revision else "") +
               ("".join(f" --include '{p}'" for p in patterns or []) if not ref.filename else "") +
               f" --local-dir {target}")
    hub = "is off (HF_HUB_OFFLINE)" if offline() else "cannot be reached"
    name = ref.repo + (f"/{ref.filename}" if ref.filename else "")
    raise MissingWeightsError(f"{key}={name}: {what} is not in the Hugging Face cache and the Hub {hub} "
                              f"({type(last).__name__}). On a machine with network run `{command}`, copy {target} "
                              f"here and set {key}={target}") from None
