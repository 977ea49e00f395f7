"""`workers=N`: the per-video work in N spawned processes, while the main process keeps all the writing.

Each worker builds its own `Pipeline` once (its stages load once per worker) and runs with one torch / OpenMP
thread, so N workers use N cores. A task is one video; its samples (bytes) come back to the main process, which
writes them through the same `ShardSink` and failure rows as `workers=1`: resume, no duplicates or gaps and
failures.jsonl work as they do in one process. Results arrive in completion order, at most 2N videos in flight
(memory stays bounded for any number of inputs); so the samples are those of workers=1, byte for byte as far as
the codecs are deterministic, while their order over the shards differs.

A worker that dies (a crash inside a decoder or codec, the kernel's out-of-memory killer) breaks the pool; the
videos in flight are then run again one at a time in a fresh pool, and a video that kills a worker on its own is
recorded as a failure, so one poisonous input cannot stop a long run. Workers exit when the main process dies
(a SIGKILLed run leaves no orphans behind).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from datamodules.inputs import Video
from datamodules.pipeline import Pipeline
from disco_train.codec import backends
from disco_train.config import ConfigError, PrepareConfig
from disco_train.io.video import VideoError

INPUT_ERRORS = (VideoError, ValueError, OSError, backends.CodecUnavailable)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
DIED = ("the worker process preparing it died (a crash in a decoder or codec, or the out-of-memory killer); it "
        "killed a worker on its own too")


@dataclass(frozen=True)
class Failure:
    """Why a video gave no samples; `expected`: the error is about the input (not retried by the next run)."""

    reason: str
    expected: bool

    @classmethod
    def of(cls, err: BaseException, video: Video) -> "Failure":
        expected = isinstance(err, INPUT_ERRORS)
        reason = str(err).replace(str(video.path) + ": ", "").replace("\n", " ")
        return cls(reason if expected else f"{type(err).__name__}: {reason}", expected)


_WORKER: dict = {}


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init(cfg: PrepareConfig, role: str, parent: int) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass
    _watch_parent(parent)
    try:
        pipeline = Pipeline(cfg, role)
        pipeline.preflight()
        _WORKER["pipeline"] = pipeline
    except Exception as err:  # an initializer that raises breaks the pool without a word: report it per task
        _WORKER["error"] = (isinstance(err, ConfigError), f"{type(err).__name__}: {err}", str(err))


def _setup_error() -> tuple[bool, str, str] | None:
    return _WORKER.get("error")


def _work(video: Video) -> tuple[Video, list[dict] | None, Failure | None]:
    if "error" in _WORKER:
        return video, None, Failure(f"worker set-up failed: {_WORKER['error'][1]}", False)
    try:
        return video, _WORKER["pipeline"].samples(video), None
    except Exception as err:  # reported like the one-process path reports it
        return video, None, Failure.of(err, video)


@contextmanager
def _one_thread_children():
    """Children read the thread variables when they start (workers start on demand, so for the pool's life)."""
    before = {k: os.environ.get(k) for k in THREAD_VARIABLES}
    os.environ.update({k: "1" for k in THREAD_VARIABLES})
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class WorkerPool:
    """N spawned workers (torch + fork is unsafe, so always spawn) running `Pipeline(cfg, role).samples`. A context
    manager: the pool started by `preflight` is the one `results` uses first, and it is shut down on exit."""

    def __init__(self, cfg: PrepareConfig, workers: int, role: str):
        self.cfg, self.workers, self.role, self.window = cfg, workers, role, 2 * workers
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _start(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init, initargs=(self.cfg, self.role, os.getpid()))
        return self.pool

    def preflight(self) -> None:
        """Start the workers and load their stages: missing weights fail here, before any video, as ConfigError.
        (One probe per worker: each submit starts a process while none is idle, so all N start now.)"""
        with _one_thread_children():
            try:
                errors = [f.result() for f in [self._start().submit(_setup_error) for _ in range(self.workers)]]
            except BrokenProcessPool:
                raise RuntimeError(f"workers={self.workers}: a worker process died while starting. Workers are "
                                   f"spawned and import the main module: a script that calls "
                                   f"datamodules.prepare.run must do so under `if __name__ == '__main__':`") from None
        error = next((e for e in errors if e is not None), None)
        if error is not None:
            is_config, described, message = error
            if is_config:
                raise ConfigError(message)
            raise RuntimeError(f"a prepare worker could not start: {described}")

    def results(self, videos: list[Video]) -> Iterator[tuple[Video, list[dict] | None, Failure | None]]:
        """(video, samples, None) or (video, None, failure) for every video, in completion order."""
        todo, suspects = deque(videos), deque()
        with _one_thread_children():
            while todo or suspects:
                yield from self._until_broken(todo, suspects)

    def _until_broken(self, todo: deque, suspects: deque) -> Iterator[tuple]:
        """Run videos in one pool until all are done or the pool breaks (then the ones in flight are suspects)."""
        pool, inflight, broken = self._start(), {}, False
        try:
            while (todo or suspects or inflight) and not broken:
                alone = bool(suspects)  # suspects run one at a time, so a crash names its video
                while (suspects if alone else todo) and len(inflight) < (1 if alone else self.window):
                    video = (suspects if alone else todo).popleft()
                    inflight[pool.submit(_work, video)] = video
                finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for future in finished:
                    video = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if alone:
                            yield video, None, Failure(DIED, True)
                        else:
                            suspects.append(video)
                        continue
                    yield result
            suspects.extend(inflight.values())
        finally:
            if broken:  # the next round starts a fresh pool
                self.__exit__()
