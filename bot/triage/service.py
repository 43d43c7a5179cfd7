"""The triage model the running bot uses, its retraining from human corrections, and the file
that lets `mahalle triage retrain` hand a new model to running processes."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.triage import TriageResult
from bot.triage.model import DEFAULT_EXAMPLES, Example, TriageModel, read_examples
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
    """Write atomically, so a reader never sees half a file."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(pickle.dumps(model))
    os.replace(temporary, path)


def load_model(path: Path) -> TriageModel:
    """A model written by `save_model` (a file this project wrote itself, never a download)."""
    model = pickle.loads(path.read_bytes())  # only ever a file save_model wrote
    if not isinstance(model, TriageModel):
        raise TypeError(f"{path} does not hold a triage model")
    return model


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

    async def reload_if_changed(self) -> bool:
        """Pick up a model another process (`mahalle triage retrain`) wrote."""
        mtime = self._mtime()
        if mtime is None or mtime == self._loaded_mtime:
            return False
        try:
            self._model = await asyncio.to_thread(load_model, self.model_path)
        except (OSError, pickle.UnpicklingError, TypeError, EOFError):
            log.exception(
                "could not load the triage model from %s; keeping the current one", self.model_path
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
