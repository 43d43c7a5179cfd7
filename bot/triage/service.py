"""The triage model the running bot uses, its retraining from human corrections, and the file
that lets `mahalle triage retrain` hand a new model to running processes.

The file holds plain arrays and JSON (`numpy.savez`, read back with `allow_pickle=False`), never
a pickle: whoever can write it can at worst make triage guess badly, never run code. It is
written 0600, like every file with what residents wrote in it."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.npyio import NpzFile
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.triage import TriageResult
from bot.triage.model import (
    DEFAULT_EXAMPLES,
    Example,
    ModelFileError,
    TriageModel,
    read_examples,
)
from models.entities import TriageCorrection

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def shipped_model(path: Path = DEFAULT_EXAMPLES) -> TriageModel:
    """The model trained on the shipped examples alone (cached per process)."""
    return TriageModel.train(read_examples(path))


async def corrections(session: AsyncSession) -> list[Example]:
    """Every domain a human chose for a case, oldest first."""
    query = select(TriageCorrection.text, TriageCorrection.domain_key).order_by(TriageCorrection.id)
    return [Example(text, domain) for text, domain in await session.execute(query)]


def save_model(model: TriageModel, path: Path) -> None:
    """Write atomically (a reader never sees half a file), readable by this user alone; a
    missing folder is made, 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    arrays: dict[str, Any] = model.to_arrays()  # (typed so none is taken for a flag)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:  # mkstemp makes it 0600
            np.savez(file, allow_pickle=False, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_model(path: Path) -> TriageModel:
    """A model `save_model` wrote; ModelFileError for anything else, without running any of it
    (plain arrays only: numpy refuses pickled objects)."""
    data = path.read_bytes()
    try:
        arrays = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(arrays, NpzFile):
            raise ModelFileError("not a saved model (one array, not a set of them)")
        with arrays:
            return TriageModel.from_arrays(arrays)
    except ModelFileError:
        raise
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise ModelFileError(f"not a saved model ({type(error).__name__}: {error})") from None


async def train_with_corrections(
    session_factory: async_sessionmaker[AsyncSession], examples_path: Path = DEFAULT_EXAMPLES
) -> tuple[TriageModel, int, int]:
    """(model, examples, of which corrections): trained in a worker thread."""
    async with session_factory() as session:
        learned = await corrections(session)
    if not learned:
        model = await asyncio.to_thread(shipped_model, examples_path)
        return model, len(read_examples(examples_path)), 0
    examples = read_examples(examples_path) + learned
    return await asyncio.to_thread(TriageModel.train, examples), len(examples), len(learned)


class Triage:
    """Holds the current model; a new one is built off the event loop and swapped in whole."""

    def __init__(self, model_path: Path, examples_path: Path = DEFAULT_EXAMPLES) -> None:
        self.model_path = model_path
        self.examples_path = examples_path
        self._model: TriageModel | None = None
        self._loaded_mtime: float | None = None

    @property
    def model(self) -> TriageModel:
        """The model in use (the shipped one until another is loaded or trained)."""
        if self._model is None:
            self._model = shipped_model(self.examples_path)
        return self._model

    def classify(self, text: str) -> TriageResult:
        """Place one report."""
        return self.model.classify(text)

    async def retrain(self, session_factory: async_sessionmaker[AsyncSession]) -> int:
        """Train on shipped examples plus corrections, keep the file, swap; returns the count."""
        model, count, learned = await train_with_corrections(session_factory, self.examples_path)
        await asyncio.to_thread(save_model, model, self.model_path)
        self._model, self._loaded_mtime = model, self._mtime()
        log.info("triage model retrained on %d examples (%d corrections)", count, learned)
        return count

    async def build_file_if_unusable(
        self, session_factory: async_sessionmaker[AsyncSession]
    ) -> bool:
        """Train and write the model file when there is none (or it cannot be read), so that no
        start trains before answering; whether it trained. Run with the schema's upgrade."""
        try:
            await asyncio.to_thread(load_model, self.model_path)
            return False
        except FileNotFoundError:
            log.info("no triage model file at %s: training one (seconds, once)", self.model_path)
        except (OSError, ModelFileError) as error:
            log.warning("replacing the triage model file %s (%s)", self.model_path, error)
        await self.retrain(session_factory)
        return True

    async def reload_if_changed(self) -> bool:
        """Pick up a model another process (`mahalle triage retrain`) wrote."""
        mtime = self._mtime()
        if mtime is None or mtime == self._loaded_mtime:
            return False
        try:
            self._model = await asyncio.to_thread(load_model, self.model_path)
        except (OSError, ModelFileError) as error:
            self._loaded_mtime = mtime  # said once; a new file is looked at again
            log.warning(
                "refused the triage model file %s (%s); keeping the model in use",
                self.model_path,
                error,
            )
            return False
        self._loaded_mtime = mtime
        log.info("triage model reloaded from %s", self.model_path)
        return True

    def _mtime(self) -> float | None:
        try:
            return self.model_path.stat().st_mtime
        except FileNotFoundError:
            return None
