"""The progress chart: its bars are the progress board's numbers, and it is a valid PNG."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest

from bot.round_texts import chart_labels, progress_png
from exports.charts import (
    MAX_SCHOOL_BARS,
    SEGMENTS,
    TITLE_SIZE,
    ChartSeries,
    progress_chart_series,
    progress_figure,
    render_progress_png,
)
from storage.enums import RoundStatus, SchoolLevel, SubmissionStatus, SubmissionTrack
from storage.schemas.rounds import Progress, ProgressTotals, RoundOut, SchoolProgress
from storage.services import Services
from tests.conftest import TZ
from tests.factories import make_world
from tests.test_rounds_service import open_round, primary_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STATUSES = list(SubmissionStatus)


def progress_of(count: int) -> Progress:
    """`count` schools cycling through the statuses; every third not-submitted one is late."""
    schools = []
    for i in range(count):
        program = STATUSES[i % 4]
        vaccine = STATUSES[(i + 1) % 4]
        schools.append(
            SchoolProgress(
                school_id=i + 1,
                school_code=f"797850{i:02d}",
                school_name=f"Trường TH Số {i + 1} – Nguyễn Thị Định",
                level=SchoolLevel.PRIMARY,
                records=(i * 7) % 23,
                program=program,
                vaccine=vaccine,
                program_late=i % 3 == 0,
                vaccine_late=i % 5 == 0,
            )
        )
    deadline = datetime(2021, 11, 15, 8, 30, tzinfo=UTC)
    rnd = RoundOut(
        id=1,
        district_id=1,
        name="Báo cáo CV 1128/GDĐT",
        period_start=date(2021, 9, 1),
        period_end=date(2021, 11, 15),
        submit_deadline=deadline,
        approve_deadline=deadline,
        compile_deadline=deadline,
        status=RoundStatus.OPEN,
        created_by_id=None,
        created_at=deadline,
        compiled_at=None,
        compiled_by_id=None,
        schools=count,
    )
    return Progress(round=rnd, now=deadline, schools=schools, totals=ProgressTotals(schools=count))


def expected_counts(progress: Progress, track: str) -> dict[str, int]:
    counts = dict.fromkeys(SEGMENTS, 0)
    for school in progress.schools:
        status: SubmissionStatus = getattr(school, track)
        late: bool = getattr(school, f"{track}_late")
        key = "overdue" if status is SubmissionStatus.NOT_SUBMITTED and late else status.value
        counts[key] += 1
    return counts


def png_size(content: bytes) -> tuple[int, int]:
    """Width and height, read by matplotlib's own PNG reader."""
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(content), format="png")
    return pixels.shape[1], pixels.shape[0]


def test_series_match_the_progress_numbers() -> None:
    progress = progress_of(30)
    series = progress_chart_series(progress)
    for track in ("program", "vaccine"):
        assert series.counts[track] == expected_counts(progress, track)
        assert sum(series.counts[track].values()) == 30
    assert [bar.records for bar in series.schools] == [s.records for s in progress.schools]
    assert series.schools[0].label == "79785000 Trường TH Số 1 – Nguyễn Thị Định"
    # School 0: not submitted and late -> overdue; school 1: submitted.
    assert [bar.segment for bar in series.schools[:4]] == ["overdue", "submitted", "approved", "returned"]
    assert series.hidden_schools == 0


def test_many_schools_keep_the_ones_to_chase() -> None:
    progress = progress_of(MAX_SCHOOL_BARS + 20)
    series = progress_chart_series(progress)
    assert len(series.schools) == MAX_SCHOOL_BARS and series.hidden_schools == 20
    drawn = {bar.segment for bar in series.schools}
    assert "overdue" in drawn and "returned" in drawn
    # The counts still cover every school.
    assert sum(series.counts["program"].values()) == MAX_SCHOOL_BARS + 20


def test_png_is_valid_and_readable_for_thirty_schools() -> None:
    progress = progress_of(30)
    series = progress_chart_series(progress)
    labels = chart_labels(progress, "vi", TZ)
    content = render_progress_png(series, labels)
    assert content.startswith(PNG_MAGIC)
    width, height = png_size(content)
    assert width == 1000 and 900 < height < 2000
    # No state leaks between calls: the same input draws the same picture.
    assert render_progress_png(series, labels) == content
    assert render_progress_png(progress, labels) == content
    assert labels.segments["overdue"] == "Quá hạn, chưa nộp" and labels.tracks["program"].startswith(
        "Chương trình"
    )


def test_png_of_an_empty_round() -> None:
    progress = progress_of(0)
    series = progress_chart_series(progress)
    assert series == ChartSeries(
        round_name="Báo cáo CV 1128/GDĐT",
        counts={track: dict.fromkeys(SEGMENTS, 0) for track in ("program", "vaccine")},
        schools=[],
    )
    assert progress_png(progress, "en", TZ).startswith(PNG_MAGIC)


async def test_chart_of_a_real_round(services: Services) -> None:
    world = await make_world(services)
    await primary_records(services, world)
    round_id = await open_round(services, world)
    await services.rounds.submit(
        round_id,
        SubmissionTrack.PROGRAM,
        school_id=world.primary_school_id,
        actor_id=world.staff_ids["principal"],
    )
    progress = await services.rounds.progress(round_id)
    series = progress_chart_series(progress)
    assert series.counts["program"] == {
        "approved": 0,
        "submitted": 1,
        "returned": 0,
        "not_submitted": 1,
        "overdue": 0,
    }
    assert series.counts["program"]["submitted"] == progress.totals.program["submitted"]
    assert [(bar.records, bar.segment) for bar in series.schools] == [(3, "submitted"), (0, "not_submitted")]
    content = progress_png(progress, "vi", TZ)
    assert content.startswith(PNG_MAGIC) and png_size(content)[0] == 1000


LONG_ROUND_NAME = (
    'Báo cáo tiến độ thực hiện Chương trình "Sóng và máy tính cho em" và tiêm vắc xin phòng COVID-19 '
    "cho học sinh, đợt tháng 11/2021"
)


def named(progress: Progress, name: str) -> Progress:
    return progress.model_copy(update={"round": progress.round.model_copy(update={"name": name})})


@pytest.mark.parametrize(
    "name",
    [
        "Đợt 1",
        "Báo cáo CV 1128/GDĐT",
        LONG_ROUND_NAME,
        LONG_ROUND_NAME + " – " + LONG_ROUND_NAME,  # longer than three lines at full size
        "Báo-cáo-" * 30,  # one "word" wider than the figure
    ],
)
@pytest.mark.parametrize("language", ["vi", "en"])
def test_title_is_never_clipped(name: str, language: str) -> None:
    """Every title line, measured by the renderer after layout, lies inside the figure, and the
    whole name is still there (wrapping only changes the spaces)."""
    progress = named(progress_of(6), name)
    labels = chart_labels(progress, language, TZ)
    figure = progress_figure(progress, labels)
    figure.canvas.draw()  # runs constrained layout, as saving does
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    frame = figure.bbox
    titles = [text for text in figure.texts if text.get_text()]
    assert len(titles) == 1
    titles += [axes.title for axes in figure.axes if axes.get_title()]
    for title in titles:
        box = title.get_window_extent(renderer)
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1, (title.get_text(), box, frame)
        assert frame.y0 <= box.y0 and box.y1 <= frame.y1, (title.get_text(), box, frame)
    shown = titles[0].get_text()
    assert "".join(shown.split()) == "".join(labels.title.split())
    if len(name) < 30:
        assert "\n" not in shown and titles[0].get_fontsize() == TITLE_SIZE
    if name == LONG_ROUND_NAME:
        assert shown.count("\n") in (1, 2) and titles[0].get_fontsize() == TITLE_SIZE
    # The title, however tall, stays above the first panel.
    top_panel = figure.axes[0].get_tightbbox(renderer)
    assert titles[0].get_window_extent(renderer).y0 >= top_panel.y1 - 1


def test_long_title_png_is_valid() -> None:
    content = progress_png(named(progress_of(6), LONG_ROUND_NAME), "vi", TZ)
    assert content.startswith(PNG_MAGIC) and png_size(content)[0] == 1000
