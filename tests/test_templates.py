"""The bulk entry templates: each loads back with openpyxl with its drop-downs, formats, example row and
instruction sheet, and reads back through the import as an empty file of its kind."""

from __future__ import annotations

import io

import openpyxl
import pytest
from openpyxl import load_workbook
from openpyxl.utils import column_index_from_string, range_boundaries

from bot.import_texts import message
from bot.texts import LANGUAGES, t
from exports.labels import Labels
from exports.reader import read_table
from exports.templates import (
    CODE_VALUES,
    EXAMPLE_ROW,
    HEADER_ROW,
    build_template,
    code_labels,
    product_label,
    template_columns,
)
from storage.enums import DosePlace
from storage.schemas.imports import (
    SPECS,
    CodeList,
    ColumnType,
    ImportKind,
    ImportScope,
    ReadLimits,
    TemplateContext,
    cell_yes_no,
    parse_condition,
    parse_device_type,
    parse_donor_kind,
    parse_handover_kind,
    parse_place,
    parse_priority,
    parse_source,
    product_keys,
)
from storage.schemas.students import parse_gender
from storage.services import Services
from storage.text import fold_key
from tests.factories import make_world

LIMITS = ReadLimits(max_bytes=10 * 2**20, max_rows=50_000)
PARSERS = {
    CodeList.GENDER: lambda v: parse_gender(v).value,  # type: ignore[union-attr]
    CodeList.PRIORITY_GROUP: lambda v: parse_priority(v).value,
    CodeList.YES_NO: lambda v: "yes" if cell_yes_no(v) else "no",
    CodeList.SOURCE: lambda v: parse_source(v).value,
    CodeList.DONOR_KIND: lambda v: parse_donor_kind(v).value,
    CodeList.DEVICE_TYPE: lambda v: parse_device_type(v).value,
    CodeList.CONDITION: lambda v: parse_condition(v).value,
    CodeList.HANDOVER_KIND: lambda v: parse_handover_kind(v).value,
    CodeList.PLACE: lambda v: parse_place(v).value,
}
# The coded columns, per kind: every one has a drop-down.
CODED = {
    ImportKind.STUDENTS: {"gender", "grade"},
    ImportKind.NEEDS: {"category", "needs_device", "needs_connectivity"},
    ImportKind.BATCHES: {"source", "donor_kind", "device_type", "condition"},
    ImportKind.HANDOVERS: {"batch", "handover_kind"},
    ImportKind.DOSES: {"product", "place"},
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_headers_are_aliases_of_their_columns(language: str) -> None:
    from exports.reader import header_keys
    from storage.schemas.imports import header_key

    for kind, spec in SPECS.items():
        keys = header_keys()[kind]
        for column in spec.columns:
            header = t(f"excel.column.{column.field}.header", language)
            assert keys.get(header_key(header)) == column.field, (kind, header)
            assert keys.get(header_key(header + " *")) == column.field
    from storage.schemas.imports import VERDICT_HEADER_KEYS

    assert header_key(t("excel.annotate.verdict_header", language)) in VERDICT_HEADER_KEYS


def test_openpyxl_parses_xml_with_defusedxml() -> None:
    assert openpyxl.DEFUSEDXML is True


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_drop_down_label_reads_back_as_its_code(language: str) -> None:
    for codes, values in CODE_VALUES.items():
        for value, label in zip(values, code_labels(codes, Labels(t, language)), strict=True):
            assert PARSERS[codes](label) == value, (codes, label)
            assert PARSERS[codes](label.upper()) == value  # and typed in capitals, without care


async def _context(services: Services, kind: ImportKind, *, school: bool = True) -> TemplateContext:
    world = await make_world(services)
    if kind is ImportKind.HANDOVERS:
        from storage.enums import DeviceType, DonationSource
        from storage.schemas.devices import BatchIn

        await services.donations.create_batch(
            BatchIn(
                source=DonationSource.PROGRAM,
                received_on="10/11/2021",
                quantity=5,
                device_type=DeviceType.LAPTOP,
            ),
            school_id=world.primary_school_id,
            actor_id=None,
        )
    scope = (
        ImportScope(school_id=world.primary_school_id, school_code="79785001")
        if school
        else ImportScope(district_id=world.district_id)
    )
    return await services.imports.template_context(kind, scope)


@pytest.mark.parametrize("kind", list(ImportKind))
async def test_template_loads_back_with_validations_and_instructions(
    services: Services, kind: ImportKind
) -> None:
    context = await _context(services, kind)
    workbook = load_workbook(io.BytesIO(build_template(context, Labels(t, "vi"))))
    data_name, guide_name, lists_name = (
        t(f"excel.sheet.{kind.value}", "vi"),
        t("excel.sheet.guide", "vi"),
        t("excel.sheet.lists", "vi"),
    )
    assert workbook.sheetnames == [data_name, guide_name, lists_name]
    assert guide_name == "Hướng dẫn"
    data, guide, lists = workbook[data_name], workbook[guide_name], workbook[lists_name]
    assert lists.sheet_state == "hidden"
    columns = template_columns(context)
    assert "school_code" not in {c.field for c in columns}  # a school's own template

    headers = [data.cell(HEADER_ROW, i + 1).value for i in range(len(columns))]
    for column, header in zip(columns, headers, strict=True):
        expected = t(f"excel.column.{column.field}.header", "vi") + (" *" if column.required else "")
        assert header == expected
        comment = data.cell(HEADER_ROW, columns.index(column) + 1).comment
        assert comment is not None and comment.text.strip()
    assert data.cell(EXAMPLE_ROW, 1).value == "Ví dụ"
    assert data.freeze_panes == f"A{EXAMPLE_ROW}"

    validations = {}
    for validation in data.data_validations.dataValidation:
        for cell_range in str(validation.sqref).split():
            min_col, min_row, _, max_row = range_boundaries(cell_range)
            validations[min_col] = (validation, min_row, max_row)
    for index, column in enumerate(columns, start=1):
        letter = openpyxl.utils.get_column_letter(index)
        assert data.column_dimensions[letter].width == column.width
        if column.type is ColumnType.DATE:
            assert data.column_dimensions[letter].number_format == "DD/MM/YYYY"
            assert validations[index][0].type == "date"
        if column.type is ColumnType.CODE:
            assert data.column_dimensions[letter].number_format == "@"  # codes keep leading zeros
        if column.field in CODED[kind]:
            validation, first, last = validations[index]
            assert validation.type == "list", column.field
            assert first == EXAMPLE_ROW and last >= 50_000
            sheet_ref, cells = validation.formula1.rsplit("!", 1)
            assert sheet_ref.strip("'") == lists_name
            column_letter = cells.split(":")[0].strip("$").rstrip("0123456789$")
            offered = [
                c.value for c in lists[column_letter][1:] if c.value is not None
            ]  # below the list's header
            assert offered, column.field
            assert column_index_from_string(column_letter) >= 1
            if column.codes in CODE_VALUES:
                assert offered == code_labels(column.codes, Labels(t, "vi"))
    assert CODED[kind] <= {c.field for c in columns}

    # The instructions: every column's rule, the date form, the codes.
    text = "\n".join(str(c.value) for row in guide.iter_rows() for c in row if c.value is not None)
    assert "15/11/2021" in text
    for column in columns:
        assert t(f"excel.column.{column.field}.header", "vi") in text
        key = "rule_check" if column.informative else "rule"
        assert t(f"excel.column.{column.field}.{key}", "vi") in text
        if column.codes in CODE_VALUES:
            for label in code_labels(column.codes, Labels(t, "vi")):
                assert label in text


async def test_products_come_from_the_table(services: Services) -> None:
    doses = await _context(services, ImportKind.DOSES)
    assert doses.products[0] == "Comirnaty (Pfizer-BioNTech)" and "Khác / Other" in doses.products
    workbook = load_workbook(io.BytesIO(build_template(doses, Labels(t, "vi"))))
    lists = workbook[t("excel.sheet.lists", "vi")]
    assert [c.value for c in lists["A"][1:]] == [
        product_label(name, Labels(t, "vi")) for name in doses.products
    ]


def test_without_batches_the_batch_column_takes_a_number() -> None:
    context = TemplateContext(kind=ImportKind.HANDOVERS, with_school_column=False, school_code="79785001")
    workbook = load_workbook(io.BytesIO(build_template(context, Labels(t, "vi"))))
    data = workbook[t("excel.sheet.handovers", "vi")]
    batch_column = [c.field for c in template_columns(context)].index("batch") + 1
    lists = [v for v in data.data_validations.dataValidation if v.type == "list"]
    assert all(range_boundaries(str(v.sqref).split()[0])[0] != batch_column for v in lists)
    guide = workbook[t("excel.sheet.guide", "vi")]
    text = "\n".join(str(c.value) for row in guide.iter_rows() for c in row if c.value is not None)
    assert t("excel.guide.values_batch_free", "vi") in text


async def test_handover_template_lists_the_schools_batches(services: Services) -> None:
    context = await _context(services, ImportKind.HANDOVERS)
    assert len(context.batches) == 1
    workbook = load_workbook(io.BytesIO(build_template(context, Labels(t, "vi"))))
    lists = workbook[t("excel.sheet.lists", "vi")]
    labels = [c.value for column in lists.iter_cols() for c in column[1:] if c.value]
    assert any(
        str(label).startswith(f"Lô #{context.batches[0].number} · 10/11/2021 · Máy tính xách tay")
        for label in labels
    )


async def test_district_template_requires_the_school_code(services: Services) -> None:
    context = await _context(services, ImportKind.DOSES, school=False)
    assert context.with_school_column
    workbook = load_workbook(io.BytesIO(build_template(context, Labels(t, "vi"))))
    data = workbook[t("excel.sheet.doses", "vi")]
    assert data.cell(HEADER_ROW, 2).value == "Mã trường *"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", list(ImportKind))
def test_template_reads_back_as_its_kind_without_rows(kind: ImportKind, language: str) -> None:
    context = TemplateContext(
        kind=kind, with_school_column=True, products=["Comirnaty (Pfizer-BioNTech)", "Khác / Other"]
    )
    table = read_table(build_template(context, Labels(t, language)), "mau.xlsx", LIMITS)
    assert table.kind is kind
    assert table.header_row == HEADER_ROW - 1
    assert table.data_rows == []  # the example row is skipped
    assert set(table.columns) == {c.field for c in SPECS[kind].columns}
    assert table.ignored_headers == []


def test_place_words_cover_every_place() -> None:
    assert {parse_place(word) for word in ("tai truong", "Tại địa phương", "noi khac")} == set(DosePlace)


# --- wording (issue 16): what the template says must match the chat and the directive -------------


def _texts(workbook: openpyxl.Workbook) -> str:
    """Every cell value and header comment of every sheet, one per line."""
    texts = []
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is not None:
                    texts.append(str(cell.value))
                if cell.comment is not None:
                    texts.append(cell.comment.text)
    return "\n".join(texts)


def _dose_template(language: str) -> openpyxl.Workbook:
    context = TemplateContext(
        kind=ImportKind.DOSES,
        with_school_column=False,
        school_code="79785001",
        products=["Comirnaty (Pfizer-BioNTech)", "Khác / Other"],
    )
    return load_workbook(io.BytesIO(build_template(context, Labels(t, language))))


def test_the_dose_template_says_one_row_per_dose_not_per_student() -> None:
    vi = _texts(_dose_template("vi"))
    assert "Mỗi học sinh chỉ một dòng" not in vi
    assert "Mỗi mũi tiêm một dòng" in vi and "Mỗi học sinh mỗi mũi một dòng" in vi
    en = _texts(_dose_template("en"))
    assert "One row per student." not in en and "One row per dose" in en
    students = TemplateContext(kind=ImportKind.STUDENTS, with_school_column=False, school_code="79785001")
    assert "Mỗi học sinh một dòng" in _texts(
        load_workbook(io.BytesIO(build_template(students, Labels(t, "vi"))))
    )


def test_the_place_list_says_in_the_community_and_old_files_still_import() -> None:
    workbook = _dose_template("vi")
    lists = workbook[t("excel.sheet.lists", "vi")]
    offered = [str(c.value) for column in lists.iter_cols() for c in column[1:] if c.value]
    assert "Tại cộng đồng" in offered
    assert "địa phương" not in _texts(workbook), "the chat and the directive say «tại cộng đồng»"
    # Files filled in before (and people who type it) still import.
    for word in ("Tại cộng đồng", "tai cong dong", "Tại địa phương", "In the community"):
        assert parse_place(word) is DosePlace.COMMUNITY


def test_the_product_list_is_in_the_templates_language_and_reads_back() -> None:
    for language, shown, hidden in (("vi", "Khác", "Other"), ("en", "Other", "Khác")):
        lists = _dose_template(language)[t("excel.sheet.lists", language)]
        offered = [str(c.value) for column in lists.iter_cols() for c in column[1:] if c.value]
        assert shown in offered and "Comirnaty (Pfizer-BioNTech)" in offered
        assert not any(hidden in value for value in offered), (language, offered)
        assert fold_key(shown) in product_keys("OTHER", "Khác / Other")  # the import reads it back


@pytest.mark.parametrize("language", LANGUAGES)
def test_excel_comments_do_not_point_to_chat_buttons(language: str) -> None:
    # A date in the future is explained in a cell comment of the checked file, where there are no buttons.
    for code, params in (
        ("date.future", {"value": "20/11/2021"}),
        ("vaccines.future", {"given_on": "20/11/2021"}),
    ):
        text = message(code, params, language)
        assert "«" not in text and "bấm" not in text.lower() and "tap" not in text.lower(), text
        assert "20/11/2021" in text
