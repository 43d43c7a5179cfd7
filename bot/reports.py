"""Statistics as people read them: text for chats, a chart for the council, files for Excel."""

from __future__ import annotations

import csv
import importlib.resources
import io
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from bot.cards import STATUS_KEYS, code_for_display
from bot.digits import persian_digits
from bot.jalali import format_date, format_datetime
from bot.services.reference import neighbourhoods_of_county
from bot.services.stats import Stats
from models.entities import Agency, Case, CaseStatus, Domain, LocalGroup

Translate = Callable[..., str]
EXPORT_BATCH = 500


def _number(value: float | None, language: str, *, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else str(round(value))
    return persian_digits(text) if language == "fa" else text


def stats_text(stats: Stats, t: Translate, language: str) -> str:
    """The /stats answer and the text of the weekly report."""
    count = (lambda n: persian_digits(n)) if language == "fa" else str
    lines = [
        t(
            "stats-title",
            start=format_date(stats.start, language),
            end=format_date(stats.end, language),
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
    lines += ["", t("stats-rating", rating=_number(stats.rating, language), ratings=stats.ratings)]
    return "\n".join(lines)


def _font() -> Any:
    from matplotlib.font_manager import FontProperties

    # Noto Sans Arabic (SIL OFL) ships in a wheel, so the chart looks the same everywhere.
    path = importlib.resources.files("pylopdf_fonts_ar") / "NotoSansArabic-Variable.ttf"
    return FontProperties(fname=str(path), size=10)


def weekly_chart(stats: Stats, t: Translate, language: str) -> bytes:
    """A PNG: cases by domain, and each agency's median hours to accept. Matplotlib shapes and
    orders Persian itself (libraqm), given a font that has the letters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    font = _font()
    figure, (domains, agencies) = plt.subplots(2, 1, figsize=(8, 8))
    names = [name for name, _ in stats.by_domain][::-1] or ["—"]
    values = [n for _, n in stats.by_domain][::-1] or [0]
    domains.barh(range(len(names)), values, color="#2a7ab0")
    domains.set_yticks(range(len(names)), names, fontproperties=font)
    domains.set_title(t("chart-by-domain"), fontproperties=font)
    timed = [a for a in stats.agencies if a.median_accept_hours is not None][::-1]
    agencies.barh(range(len(timed)), [a.median_accept_hours or 0 for a in timed], color="#d9822b")
    agencies.set_yticks(range(len(timed)), [a.name for a in timed], fontproperties=font)
    agencies.set_title(t("chart-accept-hours"), fontproperties=font)
    for axis in (domains, agencies):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        ticks = axis.get_xticks()
        axis.set_xticks(
            ticks, [_number(tick, language, digits=0) for tick in ticks], fontproperties=font
        )
    figure.suptitle(
        t(
            "chart-title",
            start=format_date(stats.start, language),
            end=format_date(stats.end, language),
        ),
        fontproperties=font,
    )
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


EXPORT_COLUMN_KEYS = (
    "export-code", "export-date", "export-status", "export-domain", "export-agency",
    "export-district", "export-neighbourhood", "export-group", "export-text", "export-phone",
    "export-reopened", "export-rating",
)  # fmt: skip


async def export_rows(
    session: AsyncSession,
    *,
    start: datetime,
    end: datetime,
    t: Translate,
    language: str,
    county_key: str | None = None,
) -> AsyncIterator[list[str]]:
    """The cases filed in [start, end) (in one county, when given), one row each, streamed in
    batches (flat memory)."""
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
            t(STATUS_KEYS[CaseStatus(case.status)]),
            domains.get(case.domain_key or "", ""),
            agencies.get(case.agency_key or "", ""),
            case.neighbourhood.district.name,
            case.neighbourhood.name,
            groups.get(case.group_id or 0, ""),
            case.text_original,
            case.reporter_phone if case.share_phone and case.reporter_phone else "",
            str(case.reopen_count),
            str(case.rating or ""),
        ]


async def write_export(
    rows: AsyncIterator[list[str]], header: list[str], path: Path, file_format: str
) -> int:
    """Write CSV (UTF-8 with BOM, so Excel reads Persian) or XLSX; returns the row count."""
    count = 0
    if file_format == "csv":
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            async for row in rows:
                writer.writerow(row)
                count += 1
        return count
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.sheet_view.rightToLeft = True
    sheet.append(header)
    async for row in rows:
        sheet.append(row)
        count += 1
    workbook.save(path)
    return count
