"""The triage model on the held-out and frozen splits, what never changes a prediction, the
ranking and second domain, the urgency rules, retraining and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.config import load_settings
from bot.triage import OTHER
from bot.triage.evaluate import evaluate, routing, score
from bot.triage.model import DEFAULT_EXAMPLES, SECOND_FLOOR, read_examples, second_domain
from bot.triage.rules import is_urgent
from bot.triage.service import Triage, load_model, save_model, shipped_model
from models.entities import Case, TriageCorrection
from tests.conftest import EXAMPLE_CONFIG

HELD_OUT = Path(__file__).parent / "data" / "triage_heldout.jsonl"
# Written by someone who never saw the training data, under another protocol
# (tests/data/README.md); nothing about the model was chosen by looking at it.
FROZEN = Path(__file__).parent / "data" / "triage_frozen.jsonl"
# Floors a little under what the shipped model measured (bench/RESULTS.md, "Triage on
# residents' words"): a change that makes the model worse on words it never saw fails here.
HELD_OUT_MACRO_F1 = 0.90  # measured 0.922
FROZEN_MACRO_F1 = 0.88  # measured 0.904
FROZEN_TOP3 = 0.97  # measured 0.991
FROZEN_BY_STYLE = {"colloquial": 0.88, "finglish": 0.88}  # measured 0.910, 0.909
FROZEN_ROUTED, FROZEN_RIGHT = 0.72, 0.95  # measured at 0.80: 75.0 % routed, 96.2 % right


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
    assert report.macro_f1 >= HELD_OUT_MACRO_F1, report.lines()


def test_frozen_split_macro_f1_holds_overall_and_by_style() -> None:
    """Floors a little under the measured figures (bench/RESULTS.md), so a regression fails."""
    examples = read_examples(FROZEN)
    results = shipped_model().classify_many([e.text for e in examples])
    report = score(examples, results)
    assert report.macro_f1 >= FROZEN_MACRO_F1, report.lines()
    assert report.top3 >= FROZEN_TOP3
    for style, floor in FROZEN_BY_STYLE.items():
        picked = [i for i, e in enumerate(examples) if e.style == style]
        style_report = score([examples[i] for i in picked], [results[i] for i in picked])
        assert style_report.macro_f1 >= floor, (style, style_report.macro_f1)


def test_frozen_split_at_the_configured_threshold_routes_most_and_rightly() -> None:
    threshold = load_settings(EXAMPLE_CONFIG).triage.threshold
    examples = read_examples(FROZEN)
    results = shipped_model().classify_many([e.text for e in examples])
    routed, right = routing(examples, results, threshold)
    assert routed >= FROZEN_ROUTED and right >= FROZEN_RIGHT, (threshold, routed, right)


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


def _as_typed_elsewhere(text: str) -> list[str]:
    """The same words as people also type them: Arabic letters, Arabic-Indic digits, without
    ZWNJ, and with emoji."""
    arabic = text.replace("ی", "ي").replace("ک", "ك")
    digits = text.translate(str.maketrans("0123456789۰۱۲۳۴۵۶۷۸۹", "٠١٢٣٤٥٦٧٨٩" * 2))
    return [arabic, digits, text.replace("\u200c", ""), f"🙏 {text} 😡😡", f"{text}👍🏽"]


def test_spelling_digits_zwnj_and_emoji_never_change_a_prediction() -> None:
    texts = [e.text for e in read_examples(HELD_OUT)][:80]
    model = shipped_model()
    for text in texts:
        placed = model.classify(text)
        for variant in _as_typed_elsewhere(text):
            again = model.classify(variant)
            assert (again.domain, again.ranked) == (placed.domain, placed.ranked), variant


def test_emoji_or_punctuation_alone_is_other() -> None:
    for text in ["🌹🌹🌹", "👍", "؟!", "..."]:
        assert shipped_model().classify(text).domain == OTHER


def test_every_domain_is_ranked_likeliest_first() -> None:
    model = shipped_model()
    for text in ["آب محله از صبح قطع است", "yeki ro zadan too kooche", "کلاس قرآن مسجد"]:
        result = model.classify(text)
        assert sorted(d for d, _ in result.ranked) == sorted(model.labels)
        assert result.ranked[0] == (result.domain, result.confidence)
        assert [p for _, p in result.ranked] == sorted((p for _, p in result.ranked), reverse=True)
        assert sum(p for _, p in result.ranked) == pytest.approx(1.0)


def test_a_second_domain_is_a_likely_runner_up_never_other() -> None:
    likely = ("welfare", SECOND_FLOOR)
    assert second_domain((("education", SECOND_FLOOR), likely)) == "welfare"
    assert second_domain((("education", 0.6), ("welfare", SECOND_FLOOR - 0.01))) is None
    assert second_domain((("education", SECOND_FLOOR), ("other", SECOND_FLOOR))) is None
    assert second_domain((("other", SECOND_FLOOR), likely)) is None
    assert second_domain((("education", 1.0),)) is None


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("سطل زباله بدین ما خودمون تفکیک میکنیم", "participation"),  # an offer of help
        ("ماشین پلاک ۱۲ کوچه ما هر روز جلوی پارکینگ زباله می‌ریزد", "municipal"),
        ("بچه‌ها سر کوچه مدرسه مواد می‌فروشند", "security"),
        ("پارک محله شب‌ها پاتوق معتادها شده و سرنگ می‌ریزند", "social"),
    ],
)
def test_another_domains_words_in_passing_do_not_decide(text: str, domain: str) -> None:
    assert shipped_model().classify(text).domain == domain


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
    assert lines[-2].split()[0].startswith("top2=") and lines[-2].split()[1].startswith("top3=")


def test_eval_thresholds_prints_routing_per_threshold_and_style(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = ["--config", str(EXAMPLE_CONFIG)]
    assert cli.main(["triage", "eval", str(DEFAULT_EXAMPLES), "--thresholds", *config]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    overall = [line for line in lines if line.startswith("threshold=")]
    assert [line.split()[0] for line in overall] == [
        f"threshold={0.05 * step:.2f}" for step in range(4, 20)
    ]
    assert sum(line.endswith("<- configured") for line in overall) == 1
    styles = {e.style for e in read_examples(DEFAULT_EXAMPLES)}
    for style in styles:
        assert sum(line.startswith(f"style={style} threshold=") for line in lines) == 16
    assert any(line.startswith("second: labelled=") for line in lines)


def test_classify_prints_domain_title_and_confidence(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["triage", "classify", "آب محله از صبح قطع است", "--config", str(EXAMPLE_CONFIG)])
        == 0
    )
    out = capsys.readouterr().out
    title = "آب، برق، گاز و مخابرات"
    assert re.fullmatch(rf"domain=utilities title={title} confidence=[01]\.\d{{3}}\n", out)


def test_eval_of_a_missing_file_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        cli.main(["triage", "eval", str(tmp_path / "none.jsonl"), "--config", str(EXAMPLE_CONFIG)])
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
