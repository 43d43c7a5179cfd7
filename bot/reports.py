"""Statistics as people read them: text for chats, a chart for the council, files for Excel."""

from __future__ import annotations

import csv
import importlib.resources
import io
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.cards import STATUS_KEYS, code_for_display
from bot.digits import persian_digits
from bot.jalali import TEHRAN, format_date, format_datetime, format_week
from bot.services.reference import neighbourhoods_of_county
from bot.services.stats import AgencyWeek, Stats
from models.entities import Agency, Case, CaseStatus, Domain, LocalGroup

Translate = Callable[..., str]
EXPORT_BATCH = 500


def _number(value: float | None, language: str, *, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))
    return persian_digits(text).replace(".", "٫") if language == "fa" else text


def stats_text(stats: Stats, t: Translate, language: str, *, heading: str | None = None) -> str:
    """The /stats answer and the text of the weekly report (which names its week once, above,
    and gives its own `heading` here)."""
    count = (lambda n: persian_digits(n)) if language == "fa" else str
    lines = [
        heading
        or t(
            "stats-title",
            start=format_date(stats.start, language),
            # The period is [start, end): its last day is the one before `end`'s midnight.
            end=format_date(stats.end - timedelta(microseconds=1), language),
            total=stats.total,
        )
    ]

    def section(key: str, pairs: list[tuple[str, int]]) -> None:
        if pairs:
            lines.append("")
            lines.append(t(key))
            lines.extend(f"• {name}: {count(n)}" for name, n in pairs)

    section("stats-by-status", [(t(STATUS_KEYS[CaseStatus(s)]), n) for s, n in stats.by_status])
    section("stats-by-domain", stats.by_domain)
    if stats.rerouted:
        share = _number(stats.rerouted / stats.total * 100, language, digits=0)
        lines += ["", t("stats-reroutes", count=stats.rerouted, total=stats.total, share=share)]
        lines.append(t("stats-reroutes-by-domain"))
        lines += [f"• {name or '—'}: {count(n)}" for name, n in stats.reroutes_by_domain]
    section("stats-by-district", stats.by_district)
    section("stats-by-neighbourhood", stats.by_neighbourhood)
    if stats.agencies:
        lines += ["", t("stats-agencies")]
        for a in stats.agencies:
            lines.append(
                t(
                    "stats-agency-line", name=a.name, cases=a.cases,
                    accept=_number(a.median_accept_hours, language),
                    resolve=_number(a.median_resolve_hours, language),
                    overdue=_number(a.overdue_rate * 100, language, digits=0),
                    reopened=_number(a.reopen_rate * 100, language, digits=0),
                    rating=_number(a.rating, language),
                )
            )  # fmt: skip
    if stats.shared_cases:
        lines += ["", t("stats-shared-cases", cases=stats.shared_cases)]
        section("stats-agency-pairs", stats.agency_pairs)
    lines += ["", t("stats-rating", rating=_number(stats.rating, language), ratings=stats.ratings)]
    taking_part = stats.participation
    if taking_part.joined or taking_part.offers:
        lines += [
            "",
            t(
                "stats-participation", joined=taking_part.joined, offers=taking_part.offers,
                accepted=taking_part.accepted,
            ),
        ]  # fmt: skip
    return "\n".join(lines)


def agency_week_text(agencies: Sequence[AgencyWeek], t: Translate) -> str:
    """The weekly report's part on agencies: open at the week's end, resolved in it, overdue."""
    if not agencies:
        return t("weekly-agencies-none")
    lines = [t("weekly-agencies-title")]
    lines += [
        t("weekly-agency-line", name=a.name, open=a.open, resolved=a.resolved, overdue=a.overdue)
        for a in agencies
    ]
    return "\n".join(lines)


def earlier_weeks_text(earlier: Sequence[int], total: int, t: Translate, language: str) -> str:
    """The weekly report's line comparing the week's `total` with the weeks before it (latest
    first) and their average, to one decimal (three reports in four weeks average 0.8)."""
    return t(
        "weekly-earlier", counts=" / ".join(t("weekly-count", n=n) for n in earlier),
        average=_number(sum(earlier) / len(earlier), language), total=total,
    )  # fmt: skip


def _font() -> Any:
    from matplotlib.font_manager import FontProperties

    # Noto Sans Arabic (SIL OFL) ships in a wheel, so the chart looks the same everywhere.
    path = importlib.resources.files("pylopdf_fonts_ar") / "NotoSansArabic-Variable.ttf"
    return FontProperties(fname=str(path), size=10)


BLUE, ORANGE, GREEN, RED, GREY = "#2a7ab0", "#d9822b", "#3a9a5b", "#c8443c", "#9aa5ad"


def weekly_chart(
    stats: Stats,
    t: Translate,
    language: str,
    *,
    earlier: Sequence[int] = (),
    agencies: Sequence[AgencyWeek] = (),
) -> bytes:
    """The weekly chart (`weekly_figure`) as a PNG."""
    import matplotlib.pyplot as plt

    figure = weekly_figure(stats, t, language, earlier=earlier, agencies=agencies)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def weekly_figure(
    stats: Stats,
    t: Translate,
    language: str,
    *,
    earlier: Sequence[int] = (),
    agencies: Sequence[AgencyWeek] = (),
) -> Any:
    """The week in four panels, every bar labelled with its number: cases by domain; this week
    beside the weeks before it (`earlier`, latest first); each agency's open, resolved and
    overdue cases; each agency's median working hours to accept. A panel with nothing to show
    says so in words. The week and county are named once, in the message the chart goes with.
    Matplotlib shapes and orders Persian itself (libraqm), given a font that has the letters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    font = _font()
    figure, panels = plt.subplots(2, 2, figsize=(12, 9))
    (domains, weeks), (workload, accept) = panels
    quiet = stats.total == 0

    def labelled(axis: Any, bars: Any, values: Sequence[float], digits: int = 0) -> None:
        shown = [_number(value, language, digits=digits) for value in values]
        axis.bar_label(bars, shown, padding=3, fontproperties=font)

    def empty(axis: Any, title: str, instead: str) -> None:
        axis.set_title(title, fontproperties=font)
        sentence = t("chart-empty") if quiet else t(instead)  # an empty week, or an empty panel
        axis.text(
            0.5, 0.5, sentence, ha="center", va="center", transform=axis.transAxes,
            fontproperties=font, color="#555555",
        )  # fmt: skip
        axis.set_xticks([])
        axis.set_yticks([])

    def counted(axis: Any, names: list[str], bars: Any, values: Sequence[float]) -> None:
        axis.set_yticks(range(len(names)), names, fontproperties=font)
        axis.set_xlim(0, max([*values, 1]) * 1.18)  # room for the labels
        axis.set_xticks([])
        labelled(axis, bars, values)

    if quiet or not stats.by_domain:
        empty(domains, t("chart-by-domain"), "chart-no-domain")
    else:
        names = [name for name, _ in stats.by_domain][::-1]
        values = [n for _, n in stats.by_domain][::-1]
        counted(domains, names, domains.barh(range(len(names)), values, color=BLUE), values)
        domains.set_title(t("chart-by-domain"), fontproperties=font)

    totals = [*reversed(earlier), stats.total]
    starts = [stats.start - timedelta(days=7 * back) for back in range(len(totals) - 1, -1, -1)]
    until = t("week-until")
    labels = [
        format_week(s, s + timedelta(days=7), language, until=until, year=False) for s in starts
    ]
    colours = [GREY] * (len(totals) - 1) + [BLUE]
    bars = weeks.bar(range(len(totals)), totals, color=colours)
    weeks.set_xticks(range(len(totals)), labels, fontproperties=font, rotation=20)
    weeks.set_ylim(0, max([*totals, 1]) * 1.18)
    weeks.set_yticks([])
    labelled(weeks, bars, totals)
    weeks.set_title(t("chart-weeks"), fontproperties=font)

    shown = list(agencies)[:8][::-1]
    if not shown:
        empty(workload, t("chart-agencies"), "chart-no-agencies")
    else:
        rows = range(len(shown))
        height = 0.27
        series = [
            ([a.open for a in shown], t("chart-open"), BLUE, height),
            ([a.resolved for a in shown], t("chart-resolved"), GREEN, 0.0),
            ([a.overdue for a in shown], t("chart-overdue"), RED, -height),
        ]
        top = max([1, *(v for values, *_ in series for v in values)])
        for values, label, colour, shift in series:
            bars = workload.barh(
                [r + shift for r in rows], values, height=height, color=colour, label=label
            )
            labelled(workload, bars, values)
        workload.set_yticks(rows, [a.name for a in shown], fontproperties=font)
        workload.set_xlim(0, top * 1.18)
        workload.set_xticks([])
        workload.legend(prop=font, loc="lower right")
        workload.set_title(t("chart-agencies"), fontproperties=font)

    timed = [a for a in stats.agencies if a.median_accept_hours is not None][:8][::-1]
    if not timed:
        empty(accept, t("chart-accept-hours"), "chart-no-accept")
    else:
        hours = [a.median_accept_hours or 0.0 for a in timed]
        bars = accept.barh(range(len(timed)), hours, color=ORANGE)
        accept.set_yticks(range(len(timed)), [a.name for a in timed], fontproperties=font)
        accept.set_xlim(0, max([*hours, 1]) * 1.18)
        accept.set_xticks([])
        labelled(accept, bars, hours, digits=1)
        accept.set_title(t("chart-accept-hours"), fontproperties=font)

    for axis in (domains, weeks, workload, accept):
        for side in ("top", "right"):
            axis.spines[side].set_visible(False)
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class Column:
    """One column of an export: its header's locale key, what it holds, its width in XLSX.
    kind: "text" (words people or the config wrote: never evaluated by a spreadsheet), "phone"
    (text, always), "when" (a date and time cell), "number"."""

    key: str
    kind: str
    width: int


EXPORT_COLUMNS = (
    Column("export-code", "text", 14), Column("export-date", "text", 20),
    Column("export-datetime", "when", 18), Column("export-status", "text", 16),
    Column("export-domain", "text", 18), Column("export-agency", "text", 22),
    Column("export-district", "text", 14), Column("export-neighbourhood", "text", 18),
    Column("export-group", "text", 22), Column("export-text", "text", 60),
    Column("export-phone", "phone", 18), Column("export-reopened", "number", 10),
    Column("export-rating", "number", 10),
    Column("export-latitude", "number", 11), Column("export-longitude", "number", 11),
)  # fmt: skip
EXPORT_COLUMN_KEYS = tuple(column.key for column in EXPORT_COLUMNS)
# What a spreadsheet may read as the start of a formula (OWASP's CSV injection guidance: =, +,
# -, @, tab, carriage return), with the full-width forms some spreadsheets read the same way.
FORMULA_STARTS = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")
# What may come before such a character and still let the formula through: white space, and
# the invisible direction and joining marks Persian text carries.
_INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff" + "".join(
    map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)])
)
_LEADING = re.compile(f"^[\\s{_INVISIBLE}]+")
Cell = str | int | float | datetime | None


def formula_like(text: str) -> bool:
    """Whether a spreadsheet could take this text for a formula."""
    first = text[:1]
    if first in FORMULA_STARTS:
        return True
    if not (first.isspace() or first in _INVISIBLE) or not first:
        return False
    leading = _LEADING.match(text)
    return leading is not None and text[leading.end() : leading.end() + 1] in FORMULA_STARTS


def inert(text: str) -> str:
    """Text a spreadsheet opening a CSV shows and never evaluates: a formula-like start gets
    a single quote before it (OWASP)."""
    return "'" + text if formula_like(text) else text


def _tehran_clock(moment: datetime) -> datetime:
    """The moment on Tehran's clock, without a zone (Excel's date cells have none)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(TEHRAN).replace(tzinfo=None, microsecond=0)


async def export_rows(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    t: Translate,
    language: str,
    county_key: str | None = None,
) -> AsyncIterator[list[Cell]]:
    """The cases filed in [start, end) (in one county, when given), one row each in the order of
    EXPORT_COLUMNS, streamed in batches (flat memory)."""
    domains = {d.key: d.title for d in (await session.scalars(select(Domain))).all()}
    agencies = {a.key: a.name for a in (await session.scalars(select(Agency))).all()}
    groups = {g.id: g.name for g in (await session.scalars(select(LocalGroup))).all()}
    query = (
        select(Case)
        .options(selectinload(Case.neighbourhood))
        .where(Case.created_at >= start, Case.created_at < end)
        .order_by(Case.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    if county_key is not None:
        query = query.where(Case.neighbourhood_id.in_(neighbourhoods_of_county(county_key)))
    async for case in await session.stream_scalars(query):
        yield [
            code_for_display(case.code, language).strip("\u2066\u2069"),
            format_datetime(case.created_at, language).replace("\u2066", "").replace("\u2069", ""),
            _tehran_clock(case.created_at),
            t(STATUS_KEYS[CaseStatus(case.status)]),
            domains.get(case.domain_key or "", ""),
            agencies.get(case.agency_key or "", ""),
            case.neighbourhood.district.name,
            case.neighbourhood.name,
            groups.get(case.group_id or 0, ""),
            case.text_original,
            case.reporter_phone if case.share_phone and case.reporter_phone else "",
            case.reopen_count,
            case.rating,
            case.latitude,
            case.longitude,
        ]


def _csv_text(value: Cell) -> str:
    if value is None:
        return ""
    text = str(value)
    first = text[:1]  # most texts start with a letter: decided without a call
    if first in FORMULA_STARTS or ((first.isspace() or first in _INVISIBLE) and formula_like(text)):
        return "'" + text
    return text


def _csv_phone(value: Cell) -> str:
    return "'" + str(value) if value else ""  # behind a quote a phone is text, not a number


def _csv_when(value: Cell) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


def _csv_number(value: Cell) -> str:
    return "" if value is None else str(value)


# How each kind of column is written to CSV so that Excel opens it safely.
_CSV_CELL = {"text": _csv_text, "phone": _csv_phone, "when": _csv_when, "number": _csv_number}


async def _write_csv(rows: AsyncIterator[list[Cell]], header: list[str], path: Path) -> int:
    """CSV in UTF-8 with a BOM, so Excel reads Persian; returns the row count."""
    cells = [_CSV_CELL[column.kind] for column in EXPORT_COLUMNS]
    count = 0
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([inert(name) for name in header])
        async for row in rows:
            writer.writerow([cell(value) for cell, value in zip(cells, row, strict=True)])
            count += 1
    return count


def _xlsx_text(sheet: Any, text: str, **style: Any) -> Any:
    """Text that stays text: never a formula (nor an error value such as `#N/A`), whatever it
    starts with; a plain string where openpyxl would store it as text anyway (faster)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE

    clean = ILLEGAL_CHARACTERS_RE.sub("", text)
    risky = formula_like(text)
    if not (risky or style or clean in ERROR_CODES):
        return clean
    cell = WriteOnlyCell(sheet, clean)
    cell.data_type = "s"
    if risky:
        cell.quotePrefix = True  # edited in Excel, it stays text
    for name, value in style.items():
        setattr(cell, name, value)
    return cell


def _xlsx_cell(sheet: Any, value: Cell) -> Any:
    """A typed cell: text as text, a moment as a date cell, a figure as a number."""
    from openpyxl.cell import WriteOnlyCell

    if value is None or isinstance(value, (int, float)):
        return value
    if isinstance(value, datetime):
        cell = WriteOnlyCell(sheet, value)
        cell.number_format = "yyyy-mm-dd hh:mm"
        return cell
    return _xlsx_text(sheet, str(value))


async def _write_xlsx(
    rows: AsyncIterator[list[Cell]], header: list[str], path: Path, sheet_title: str
) -> int:
    """An XLSX sheet, right to left: a bold header row that stays in view and filters, typed
    cells, readable widths; returns the row count."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=sheet_title)
    sheet.sheet_view.rightToLeft = True
    sheet.freeze_panes = "A2"
    for index, column in enumerate(EXPORT_COLUMNS, 1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    bold = Font(bold=True)
    sheet.append([_xlsx_text(sheet, name, font=bold) for name in header])
    count = 0
    async for row in rows:
        sheet.append([_xlsx_cell(sheet, value) for value in row])
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(header))}{count + 1}"
    workbook.save(path)
    return count


async def write_export(
    rows: AsyncIterator[list[Cell]],
    header: list[str],
    path: Path,
    file_format: str,
    *,
    sheet_title: str = "Mahalle",
) -> int:
    """Write CSV (UTF-8 with BOM, so Excel reads Persian) or XLSX; returns the row count. No
    spreadsheet evaluates what people wrote: it is text in both."""
    if file_format == "csv":
        return await _write_csv(rows, header, path)
    return await _write_xlsx(rows, header, path, sheet_title)
