"""The triage model on the held-out split, the urgency rules, retraining and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.triage.evaluate import evaluate
from bot.triage.model import DEFAULT_EXAMPLES, read_examples
from bot.triage.rules import is_urgent
from bot.triage.service import Triage, load_model, save_model, shipped_model
from models.entities import Case, TriageCorrection
from tests.conftest import EXAMPLE_CONFIG

HELD_OUT = Path(__file__).parent / "data" / "triage_heldout.jsonl"


def test_held_out_split_is_never_trained_on() -> None:
    train = {e.text for e in read_examples(DEFAULT_EXAMPLES)}
    held = {e.text for e in read_examples(HELD_OUT)}
    assert train & held == set()


def test_every_domain_has_at_least_sixty_examples() -> None:
    examples = read_examples(DEFAULT_EXAMPLES) + read_examples(HELD_OUT)
    counts = {d: sum(e.domain == d for e in examples) for d in {e.domain for e in examples}}
    assert len(counts) == 11 and min(counts.values()) >= 60


def test_held_out_macro_f1_meets_the_bar() -> None:
    report = evaluate(shipped_model(), read_examples(HELD_OUT))
    assert report.macro_f1 >= 0.90, report.lines()
    assert report.accuracy >= 0.90


def test_one_text_at_a_time_agrees_with_the_batch(tmp_path: Path) -> None:
    """Placing classifies one text directly; evaluation batches through sklearn: same answers."""
    texts = [e.text for e in read_examples(HELD_OUT)]
    texts += ["", "؟!", "12345", "<b>برق</b> " * 200, "bargh\u202e kuche", "🙂🙂🙂"]
    model = shipped_model()
    save_model(model, tmp_path / "model.pickle")
    reloaded = load_model(tmp_path / "model.pickle")
    singly = [model.classify(text) for text in texts]
    after_reload = [reloaded.classify(text) for text in texts]
    for one, other, batch in zip(singly, after_reload, model.classify_many(texts), strict=True):
        assert one.domain == other.domain == batch.domain
        assert one.confidence == pytest.approx(batch.confidence, abs=1e-9)
        assert one.urgent == batch.urgent


@pytest.mark.parametrize(
    ("typed", "domain"),
    [
        ("برق کوچه از دیشب قطع است", "utilities"),
        ("برق كوچه از ديشب قطع است", "utilities"),  # Arabic kaf and yeh
        ("bargh kuche az dishab ghat ast", "utilities"),  # Finglish
        ("دزد ضبط ماشینم رو برد", "security"),
        ("سطل زباله ٣ روزه خالی نشده", "municipal"),  # Arabic-Indic digit
    ],
)
def test_spelling_variants_land_in_the_same_domain(typed: str, domain: str) -> None:
    assert shipped_model().classify(typed).domain == domain


@pytest.mark.parametrize(
    "text",
    [
        "آتش‌سوزی در انبار ته کوچه",
        "اتیش سوزی شده کمک",
        "بوی گاز شدید میاد",
        "با چاقو به هم حمله کردند",
        "boo gaz miad",
    ],
)
def test_danger_words_are_urgent(text: str) -> None:
    assert is_urgent(text)


@pytest.mark.parametrize(
    "text", ["چراغ کوچه خاموش است", "فشار گاز کم است و بخاری خاموش می‌شود", "آتش‌نشانی محله کجاست"]
)
def test_ordinary_reports_are_not_urgent(text: str) -> None:
    assert not is_urgent(text)


async def test_retraining_learns_from_corrections_and_other_processes_reload_it(
    session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    novel = "قفسه‌های کتابخوانی ایستگاه مترو"
    async with session_factory() as session:
        case = Case(
            code="1405-09999", year=1405, sequence=9999, draft_token="t", neighbourhood_id=1,
            text_original=novel, text_normalized=novel, photo_file_ids=[],
        )  # fmt: skip
        session.add(case)
        await session.flush()
        for n in range(12):
            session.add(
                TriageCorrection(
                    case_id=case.id, text=f"{novel} {n}", domain_key="welfare", source="coordinator"
                )
            )
        await session.commit()
    writer = Triage(tmp_path / "model.pkl")
    before = writer.classify(novel).domain
    assert await writer.retrain(session_factory) == len(read_examples(DEFAULT_EXAMPLES)) + 12
    assert writer.classify(novel).domain == "welfare" != before

    reader = Triage(tmp_path / "model.pkl")  # another process
    assert await reader.reload_if_changed()
    assert reader.classify(novel).domain == "welfare"
    assert not await reader.reload_if_changed(), "nothing new to load"


def test_eval_prints_a_table_and_the_summary_line_last(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["triage", "eval", str(HELD_OUT), "--config", str(EXAMPLE_CONFIG)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["domain", "precision", "recall", "f1", "n"]
    assert any(line.startswith("security ") for line in lines)
    last = lines[-1].split()
    assert [part.split("=")[0] for part in last] == ["accuracy", "macro_f1", "n", "per_second"]
    assert last[2] == f"n={len(read_examples(HELD_OUT))}"


def test_classify_prints_domain_title_and_confidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["triage", "classify", "آب محله از صبح قطع است", "--config", str(EXAMPLE_CONFIG)])
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("domain=utilities title=آب، برق، گاز و مخابرات confidence=0.")


def test_eval_of_a_missing_file_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        cli.main(["triage", "eval", str(tmp_path / "none.jsonl"), "--config", str(EXAMPLE_CONFIG)])
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
