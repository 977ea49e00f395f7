"""Reading shards without trusting them: tar members are checked by their headers before their bytes are read.

A tar header can declare a member of any size, and a sparse member of 6 GiB fits in a 10 KB file; reading one
into memory (as `webdataset.tarfile_to_samples` does) can kill a training run. Here a member larger than
`max_member_bytes`, sparse, or not a regular file is skipped without being read, and the sample it belongs to
carries the reason (`SKIPPED`) so the per-sample guard counts it once, like any other bad sample. Samples are
grouped as WebDataset does: `<key>.<field>` members, consecutive, the key up to the basename's first dot.
"""

from __future__ import annotations

import tarfile
from typing import Iterable, Iterator

from webdataset.tariterators import base_plus_ext

SKIPPED = "__skipped__"
"""Field of a sample holding why one of its members was not read."""
MAX_MEMBER_BYTES = 256 << 20
"""Largest member read (256 MiB: a 57-frame 512² target clip at CRF 12 is a few MB, its latents ~1 MB)."""


def members(url: str, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """{fname, data} per regular member of one tar, streamed; oversized or sparse members come as
    {fname, skipped: reason} without their bytes being read."""
    with open(url, "rb") as handle, tarfile.open(fileobj=handle, mode="r|*") as tar:
        for info in tar:
            if not info.isfile():
                continue
            if info.issparse() or info.size > max_member_bytes:
                kind = "sparse" if info.issparse() else "oversized"
                yield {"fname": info.name, "skipped": f"{kind} tar member {info.name} ({info.size:,} bytes declared, "
                                                      f"limit {max_member_bytes:,}) was not read"}
                continue
            yield {"fname": info.name, "data": tar.extractfile(info).read()}


def group(files: Iterable[dict], url: str) -> Iterator[dict]:
    """Consecutive members sharing a key -> one sample {__key__, __url__, field: bytes, ...}."""
    sample = None
    for f in files:
        key, field = base_plus_ext(f["fname"])
        if key is None:
            continue
        if sample is None or key != sample["__key__"]:
            if sample is not None:
                yield sample
            sample = {"__key__": key, "__url__": url}
        if "skipped" in f:
            sample[SKIPPED] = f["skipped"]
        elif field.lower() in sample:
            sample[SKIPPED] = f"duplicate member {f['fname']} in {url}"
        else:
            sample[field.lower()] = f["data"]
    if sample is not None:
        yield sample


def tar_samples(shards: Iterable[dict], handler, max_member_bytes: int = MAX_MEMBER_BYTES) -> Iterator[dict]:
    """Samples of a stream of {'url': ...} shard dicts; a tar that cannot be read is reported to `handler` (which
    counts it) and the stream goes on with the next shard."""
    for shard in shards:
        url = shard["url"]
        try:
            yield from group(members(url, max_member_bytes), url)
        except (tarfile.TarError, OSError, EOFError) as err:
            handler(ValueError(f"{url}: unreadable tar ({type(err).__name__}: {err})"))


def member_index(url: str, fields: tuple[str, ...], max_member_bytes: int = MAX_MEMBER_BYTES
                 ) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {field: (offset, size)}} of one tar's regular members of these fields, from the headers alone (a
    seekable read skips every body), for reading single members later (`read_member`). Oversized or sparse
    members are left out, as `members` skips them."""
    found: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(url, mode="r:") as tar:
        for info in tar:
            if not info.isfile() or info.issparse() or info.size > max_member_bytes:
                continue
            key, field = base_plus_ext(info.name)
            if key is not None and field.lower() in fields:
                found.setdefault(key, {})[field.lower()] = (info.offset_data, info.size)
    return found


def read_member(url: str, offset: int, size: int) -> bytes:
    """The bytes of one member located by `member_index`."""
    with open(url, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"{url}: member at byte {offset} is cut short ({len(data)} of {size} bytes)")
    return data
