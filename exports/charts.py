"""The progress board as a PNG (matplotlib, Agg, no pyplot state): how many schools are at each
step of each track, and the records every school entered in the period coloured by its programme
status, so the deputy head sees at a glance who to chase.

`progress_chart_series(progress)` is the pure part (the numbers each bar is drawn from; tested against
the progress figures); `render_progress_png(series, labels)` draws them. Every word comes in through
`ChartLabels` (the bot fills it from its catalogue), so this module knows no language.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

from storage.models import SubmissionStatus
from storage.schemas.rounds import Progress

TRACKS = ("program", "vaccine")
# Bar segments, left to right: done first, the ones to chase last.
SEGMENTS = ("approved", "submitted", "returned", "not_submitted", "overdue")
COLOURS = {
    "approved": "#2e7d32",
    "submitted": "#1e88e5",
    "returned": "#fb8c00",
    "not_submitted": "#b0bec5",
    "overdue": "#c62828",
}
# Per-school bars drawn; beyond this the chart notes how many more there are (the text lists all).
MAX_SCHOOL_BARS = 60
MAX_LABEL = 42


@dataclass(frozen=True)
class SchoolBar:
    label: str  # "code name", cut to fit
    records: int
    segment: str  # the programme status as a segment of SEGMENTS


@dataclass(frozen=True)
class ChartSeries:
    round_name: str
    counts: dict[str, dict[str, int]]  # track -> segment -> schools
    schools: list[SchoolBar]  # in the order drawn, top to bottom
    hidden_schools: int = 0  # schools not drawn (over MAX_SCHOOL_BARS)


@dataclass(frozen=True)
class ChartLabels:
    title: str
    subtitle: str
    schools_title: str
    records_axis: str
    count_axis: str
    tracks: Mapping[str, str]  # track -> its name
    segments: Mapping[str, str]  # segment -> its name
    more_schools: str = ""  # "… and N more schools", shown when some are not drawn


def segment_of(status: SubmissionStatus, late: bool) -> str:
    """A status as a bar segment: a school not submitted after the deadline is "overdue"."""
    if status is SubmissionStatus.NOT_SUBMITTED and late:
        return "overdue"
    return status.value


def _cut(text: str, size: int = MAX_LABEL) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def progress_chart_series(progress: Progress) -> ChartSeries:
    """The numbers the chart draws: schools per segment for each track, and one bar per school."""
    counts = {track: dict.fromkeys(SEGMENTS, 0) for track in TRACKS}
    bars = []
    for school in progress.schools:
        program = segment_of(school.program, school.program_late)
        counts["program"][program] += 1
        counts["vaccine"][segment_of(school.vaccine, school.vaccine_late)] += 1
        bars.append(SchoolBar(_cut(f"{school.school_code} {school.school_name}"), school.records, program))
    hidden = 0
    if len(bars) > MAX_SCHOOL_BARS:
        # Keep the ones to chase: overdue, sent back, not submitted, waiting, approved.
        rank = {segment: i for i, segment in enumerate(reversed(SEGMENTS))}
        keep = sorted(range(len(bars)), key=lambda i: (rank[bars[i].segment], i))[:MAX_SCHOOL_BARS]
        hidden = len(bars) - MAX_SCHOOL_BARS
        bars = [bars[i] for i in sorted(keep)]
    return ChartSeries(round_name=progress.round.name, counts=counts, schools=bars, hidden_schools=hidden)


def render_progress_png(progress: Progress | ChartSeries, labels: ChartLabels, *, dpi: int = 100) -> bytes:
    """Two panels: schools per status for each track (stacked bars), then the records of each
    school coloured by its programme status. The height grows with the number of schools."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = progress if isinstance(progress, ChartSeries) else progress_chart_series(progress)
    rows = max(1, len(series.schools))
    top_height, bottom_height = 2.8, 1.3 + 0.3 * rows
    figure = Figure(figsize=(10, top_height + bottom_height + 0.6), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no pyplot, no global state
    grid = figure.add_gridspec(2, 1, height_ratios=[top_height, bottom_height])
    figure.suptitle(labels.title, fontsize=14, fontweight="bold")

    # Schools per status, one stacked bar per track.
    counts_axes = figure.add_subplot(grid[0])
    tracks = list(TRACKS)
    positions = list(range(len(tracks)))
    left = [0] * len(tracks)
    for segment in SEGMENTS:
        widths = [series.counts[track][segment] for track in tracks]
        bars = counts_axes.barh(
            positions,
            widths,
            left=left,
            color=COLOURS[segment],
            label=labels.segments[segment],
            edgecolor="white",
            height=0.6,
        )
        for bar, width in zip(bars, widths, strict=True):
            if width:
                counts_axes.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_y() + bar.get_height() / 2,
                    str(width),
                    ha="center",
                    va="center",
                    color="black" if segment == "not_submitted" else "white",
                    fontsize=10,
                    fontweight="bold",
                )
        left = [a + b for a, b in zip(left, widths, strict=True)]
    counts_axes.set_yticks(positions, [labels.tracks[track] for track in tracks])
    counts_axes.invert_yaxis()
    counts_axes.set_xlim(0, max(1, *left))
    counts_axes.set_xlabel(labels.count_axis)
    counts_axes.set_title(labels.subtitle, fontsize=11)
    counts_axes.xaxis.get_major_locator().set_params(integer=True)
    counts_axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=3, fontsize=9, frameon=False)

    # Records per school, coloured by the programme status (a square marks it when there are none).
    school_axes = figure.add_subplot(grid[1])
    schools = series.schools
    if schools:
        y = list(range(len(schools)))
        colours = [COLOURS[s.segment] for s in schools]
        school_axes.barh(y, [s.records for s in schools], color=colours, height=0.7)
        school_axes.scatter([0] * len(y), y, c=colours, marker="s", s=36, clip_on=False, zorder=3)
        for position, school in zip(y, schools, strict=True):
            school_axes.text(school.records, position, f"  {school.records}", va="center", fontsize=8)
        school_axes.set_yticks(y, [s.label for s in schools], fontsize=8)
        school_axes.set_ylim(len(y) - 0.5, -0.5)
        school_axes.set_xlim(0, max(1, *(s.records for s in schools)) * 1.12)
    else:
        school_axes.set_yticks([])
    school_axes.set_xlabel(labels.records_axis)
    title = labels.schools_title
    if series.hidden_schools and labels.more_schools:
        title += "\n" + labels.more_schools
    school_axes.set_title(title, fontsize=11)
    school_axes.grid(axis="x", alpha=0.3)

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
