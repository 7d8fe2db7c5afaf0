"""The progress board as a PNG (matplotlib, Agg, no pyplot state): how many schools are at each
step of each track, and the records every school entered in the period coloured by its programme
status, so the deputy head sees at a glance who to chase.

`progress_chart_series(progress)` is the pure part (the numbers each bar is drawn from; tested against
the progress figures); `render_progress_png(series, labels)` draws them. Every word comes in through
`ChartLabels` (the bot fills it from its catalogue), so this module knows no language.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from storage.enums import SubmissionStatus
from storage.schemas.rounds import Progress

if TYPE_CHECKING:
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Text

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
# The title carries the round's name, which can be a long sentence: it wraps to the figure width in
# at most this many lines, shrinking from TITLE_SIZE down to MIN_TITLE_SIZE when it needs more.
TITLE_SIZE = 14
MIN_TITLE_SIZE = 10
MAX_TITLE_LINES = 3
TITLE_MARGIN_INCHES = 0.15  # kept clear at each side of the title


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


def fit_text(artist: Text, max_width: float, renderer: RendererBase) -> None:
    """Wrap `artist`'s text so it is at most `max_width` pixels wide, as measured by `renderer`:
    the widest wrap that fits in MAX_TITLE_LINES lines at the largest size from the artist's own
    down to MIN_TITLE_SIZE; failing that, the widest wrap that fits at MIN_TITLE_SIZE, however
    many lines (a name has no length limit, and a clipped title is worse than a tall one)."""
    text = " ".join(artist.get_text().split())
    size = artist.get_fontproperties().get_size_in_points()
    while True:
        artist.set_fontsize(size)
        chars = len(text)
        while True:
            # Words are only broken when a single word is wider than the figure.
            wrapped = textwrap.fill(text, max(chars, 1), break_long_words=True, break_on_hyphens=False)
            artist.set_text(wrapped)
            width = artist.get_window_extent(renderer).width
            if width <= max_width or chars <= 1:
                break
            # Jump close to the width that fits (text is roughly proportional), then step down.
            chars = min(chars - 1, int(chars * max_width / width))
        if wrapped.count("\n") < MAX_TITLE_LINES or size <= MIN_TITLE_SIZE:
            return
        size = max(MIN_TITLE_SIZE, size - 1)


def progress_figure(progress: Progress | ChartSeries, labels: ChartLabels, *, dpi: int = 100) -> Figure:
    """Two panels: schools per status for each track (stacked bars), then the records of each
    school coloured by its programme status. The height grows with the number of schools."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = progress if isinstance(progress, ChartSeries) else progress_chart_series(progress)
    rows = max(1, len(series.schools))
    top_height, bottom_height = 2.8, 1.3 + 0.3 * rows
    figure = Figure(figsize=(10, top_height + bottom_height + 0.6), dpi=dpi, layout="constrained")
    canvas = FigureCanvasAgg(figure)  # the Agg canvas, explicitly: no pyplot, no global state
    grid = figure.add_gridspec(2, 1, height_ratios=[top_height, bottom_height])
    heading = figure.suptitle(labels.title, fontsize=TITLE_SIZE, fontweight="bold")
    # Centred on the figure, so it fits when it is narrower than the figure less a margin each side;
    # constrained layout then makes room for however many lines it took.
    fit_text(heading, figure.bbox.width - 2 * TITLE_MARGIN_INCHES * dpi, canvas.get_renderer())

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
    locator = counts_axes.xaxis.get_major_locator()
    assert isinstance(locator, MaxNLocator)  # the default, an AutoLocator
    locator.set_params(integer=True)
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
    return figure


def render_progress_png(progress: Progress | ChartSeries, labels: ChartLabels, *, dpi: int = 100) -> bytes:
    """`progress_figure` as PNG bytes."""
    buffer = io.BytesIO()
    progress_figure(progress, labels, dpi=dpi).savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
