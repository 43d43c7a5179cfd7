"""Files with residents' data and the triage model: who can read them, what a tampered model file
can do (nothing), and that a start never trains the model before answering."""

from __future__ import annotations

import io
import logging
import os
import pickle
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bot import cli
from bot.config import ConfigError, load_settings
from bot.triage import model as triage_model
from bot.triage import service as triage_service
from bot.triage.model import read_examples
from bot.triage.service import Triage, load_model, save_model, shipped_model
from models.db import create_engine, create_session_factory, upgrade_database
from tests.conftest import EXAMPLE_CONFIG, make_settings
from tests.fakebot import start_bot, stop_bot
from tests.test_roles import TOKEN

HELD_OUT = Path(__file__).parent / "data" / "triage_heldout.jsonl"


def mode_of(path: Path) -> int:
    """The permission bits of a file."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells give (022: new files world-readable), restored afterwards."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def config_with_model_at(tmp_path: Path, model: Path) -> Path:
    """The example config with the model file in `model`."""
    text, found = re.subn(
        r'(?m)^model_path = ".*"$',
        f'model_path = "{model}"',
        EXAMPLE_CONFIG.read_text(encoding="utf-8"),
    )
    assert found == 1
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


class _MakesADirectory:
    """Unpickling this runs os.mkdir: what a hostile model file would do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.path),))


# --- the model file holds data, never code ---------------------------------------------------


def test_a_saved_model_gives_the_same_probabilities_after_loading(tmp_path: Path) -> None:
    texts = [e.text for e in read_examples(HELD_OUT)]
    texts += ["", "؟!", "12345", "<b>برق</b> " * 200, "bargh\u202e kuche", "🙂🙂🙂"]
    model = shipped_model()
    save_model(model, tmp_path / "model.npz")
    loaded = load_model(tmp_path / "model.npz")
    before = model._pipeline.predict_proba([triage_model.features_text(t) for t in texts])
    after = loaded._pipeline.predict_proba([triage_model.features_text(t) for t in texts])
    assert np.array_equal(before, after)
    assert [model.classify(t) for t in texts] == [loaded.classify(t) for t in texts]
    assert loaded.labels == model.labels


async def test_a_pickle_written_over_the_model_file_is_refused_without_running_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.npz"
    save_model(shipped_model(), path)
    triage = Triage(path)
    assert await triage.reload_if_changed()
    in_use = triage.model
    marker = tmp_path / "code-ran"
    payload = pickle.dumps(_MakesADirectory(marker))
    path.write_bytes(payload)
    os.utime(path, (1, 1))  # a new modification time, as any rewrite gives

    caplog.set_level(logging.INFO)
    assert not await triage.reload_if_changed()
    assert not marker.exists(), "the file's code ran"
    assert triage.model is in_use, "the model in use stays"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "refused the triage model file" in warnings[0].getMessage()
    assert str(path) in warnings[0].getMessage()
    assert not await triage.reload_if_changed(), "said once, not every minute"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1

    pickle.loads(payload)  # the payload is live: this is what reading the file used to do
    assert marker.is_dir()


def _npz(**arrays: np.ndarray) -> bytes:
    """A .npz file's bytes; object arrays are pickled inside it."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _with(**changes: np.ndarray) -> bytes:
    """The shipped model's arrays with some replaced."""
    return _npz(**{**shipped_model().to_arrays(), **changes})


def _header(**changes: object) -> np.ndarray:
    import json

    header = json.loads(shipped_model().to_arrays()["header"].tobytes())
    header.update(changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


TAMPERED: list[tuple[Callable[[], bytes], str]] = [
    (lambda: b"", "not a saved model"),
    (lambda: b"PK\x03\x04 not really a zip", "not a saved model"),
    (lambda: pickle.dumps({"coef": [1.0]}), "not a saved model"),
    (lambda: _npz(header=np.array([object()], dtype=object)), "arrays"),
    (
        lambda: _with(coef=np.array([_MakesADirectory(Path("/no/such"))], dtype=object)),
        "Object arrays",
    ),
    (lambda: _with(coef=np.zeros((2, 2))), "coef: expected float64"),
    (lambda: _with(intercept=np.full(11, np.nan)), "finite"),
    (lambda: _with(header=_header(format="mahalle-triage-model/0")), "not a mahalle-triage"),
    (lambda: _with(header=_header(classes=["a", "a", "b"])), "distinct names"),
    (lambda: _with(header=_header(temperature=0.0)), "temperature"),
    (lambda: _with(header=_header(temperature="1")), "temperature"),
]


@pytest.mark.parametrize(("content", "reason"), TAMPERED, ids=[r for _, r in TAMPERED])
def test_a_model_file_that_is_not_one_we_wrote_is_refused(
    tmp_path: Path, content: Callable[[], bytes], reason: str
) -> None:
    path = tmp_path / "model.npz"
    path.write_bytes(content())
    with pytest.raises(triage_model.ModelFileError, match=reason):
        load_model(path)


def test_a_model_written_with_other_feature_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.npz"
    save_model(shipped_model(), path)
    built = triage_model._pipeline

    def wider() -> object:
        pipeline = built()
        pipeline.named_steps["features"].transformer_list[0][1].set_params(ngram_range=(2, 6))
        return pipeline

    monkeypatch.setattr(triage_model, "_pipeline", wider)
    with pytest.raises(triage_model.ModelFileError, match="built another way"):
        load_model(path)


# --- a start never trains before answering ----------------------------------------------------


def _no_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) any training from here on."""
    trained: list[str] = []

    def refuse(*_: object, **__: object) -> None:
        trained.append("trained")
        raise AssertionError("trained the model")

    monkeypatch.setattr(triage_model.TriageModel, "train", classmethod(refuse))
    monkeypatch.setattr(triage_service, "shipped_model", refuse)
    return trained


async def test_db_upgrade_writes_a_missing_model_file_and_a_start_then_only_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usual_umask: None
) -> None:
    model = tmp_path / "state" / "triage-model.npz"
    config = config_with_model_at(tmp_path, model)
    database = tmp_path / "mahalle.db"
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    assert await _in_thread(cli.main, ["db", "upgrade", "--config", str(config)]) == 0
    assert model.is_file() and mode_of(model) == 0o600
    assert mode_of(model.parent) == 0o700
    written = model.stat().st_mtime_ns

    trained = _no_training(monkeypatch)
    assert await _in_thread(cli.main, ["db", "upgrade", "--config", str(config)]) == 0
    assert model.stat().st_mtime_ns == written, "built once, not at every upgrade"

    settings = make_settings(f"sqlite+aiosqlite:///{database}")
    settings = settings.model_copy(
        update={"triage": settings.triage.model_copy(update={"model_path": model})}
    )
    app, _ = await start_bot(settings)
    try:
        runtime = app.bot_data["runtime"]
        assert runtime.triage.classify("برق کوچه از دیشب قطع است").domain == "utilities"
    finally:
        await stop_bot(app)
    assert trained == [], "the start loaded the file and trained nothing"


async def test_an_unreadable_model_file_is_replaced_by_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "triage-model.npz"
    model.write_bytes(pickle.dumps(_MakesADirectory(tmp_path / "code-ran")))
    config = config_with_model_at(tmp_path, model)
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    assert await _in_thread(cli.main, ["db", "upgrade", "--config", str(config)]) == 0
    assert not (tmp_path / "code-ran").exists()
    assert load_model(model).labels == shipped_model().labels


async def _in_thread(function: object, argv: list[str]) -> int:
    """Run the CLI (which starts its own event loop) off this test's loop."""
    import asyncio

    assert callable(function)
    result = await asyncio.to_thread(function, argv)
    assert isinstance(result, int)
    return result


# --- files with residents' data are the bot user's alone -------------------------------------


async def test_the_sqlite_database_and_its_companions_are_private(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "mahalle.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade_database(engine)
        async with create_session_factory(engine)() as session:
            from sqlalchemy import text

            await session.execute(text("CREATE TABLE probe (x INTEGER)"))
            await session.commit()
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(file.exists() for file in files)
            assert {file.name: mode_of(file) for file in files} == {
                file.name: 0o600 for file in files
            }
    finally:
        await engine.dispose()


async def test_a_world_readable_database_from_before_is_made_private(
    tmp_path: Path, usual_umask: None
) -> None:
    path = tmp_path / "old.db"
    for made_before in (path, Path(f"{path}-wal")):
        made_before.write_bytes(b"")
        assert mode_of(made_before) == 0o644
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await engine.dispose()
    assert mode_of(path) == 0o600 and mode_of(Path(f"{path}-wal")) == 0o600


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
async def test_mahalle_export_writes_a_private_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, usual_umask: None, file_format: str
) -> None:
    database = tmp_path / "mahalle.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await upgrade_database(engine)
    await engine.dispose()
    monkeypatch.setenv("MAHALLE_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    output = tmp_path / f"cases.{file_format}"
    output.write_bytes(b"")  # left by an earlier export, world-readable
    output.chmod(0o644)
    argv = ["export", "--from", "1405/09/01", "--to", "1405/09/30", "--format", file_format]
    argv += ["--output", str(output), "--config", str(EXAMPLE_CONFIG)]
    assert await _in_thread(cli.main, argv) == 0
    assert output.stat().st_size > 0 and mode_of(output) == 0o600
    fresh = tmp_path / "new" / f"fresh.{file_format}"
    fresh.parent.mkdir()
    argv[argv.index("--output") + 1] = str(fresh)
    assert await _in_thread(cli.main, argv) == 0
    assert mode_of(fresh) == 0o600
    assert os.umask(0o022) == 0o022, "the command gives its caller's umask back"


def test_the_model_file_is_private(tmp_path: Path, usual_umask: None) -> None:
    path = tmp_path / "new-folder" / "model.npz"
    save_model(shipped_model(), path)
    assert mode_of(path) == 0o600 and mode_of(path.parent) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["model.npz"], "no temporary file left"


# --- the webhook secret ----------------------------------------------------------------------


def test_a_short_webhook_secret_stops_start_up_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"^MAHALLE_WEBHOOK_SECRET: 31 characters is too short"):
        load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_WEBHOOK_SECRET": "x" * 31})
    assert load_settings(EXAMPLE_CONFIG, environ={"MAHALLE_WEBHOOK_SECRET": "x" * 32})

    monkeypatch.setenv("MAHALLE_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("MAHALLE_WEBHOOK_SECRET", "hunter2")
    assert cli.main(["run", "--config", str(EXAMPLE_CONFIG)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "MAHALLE_WEBHOOK_SECRET" in error
    assert "hunter2" not in error, "the secret itself is not printed"
