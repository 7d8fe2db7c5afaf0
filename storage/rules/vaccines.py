"""COVID-19 vaccine doses (Directive No. 1128/GDĐT, menu 4.9.1: «ngày tiêm, loại thuốc được tiêm của
các mũi tiêm»; DOMAIN.md "Vaccine doses"). The per-product figures (minimum age, minimum interval)
are rows of `vaccine_product`, not code: the district corrects them without a release; the rules
that read them are here, once, for the chat, the class round and the Excel import."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

from storage.rules.findings import Finding
from storage.rules.timeliness import PROGRAM_START

# No dose date before the programme's school year: the same floor as the chat's date parser
# (storage.schemas.parsing.parse_event_date), so the bot and the Excel import agree.
DOSE_DATE_FLOOR = PROGRAM_START
# The product "other": the person types the product's name.
OTHER_PRODUCT_CODE = "OTHER"


class Product(Protocol):
    """A vaccine product as the rules read it (a `VaccineProduct` row)."""

    @property
    def code(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def min_age_years(self) -> int: ...
    @property
    def min_interval_days(self) -> int: ...


class Dose(Protocol):
    """A dose as the rules read it (a `VaccineDose` row)."""

    @property
    def dose_number(self) -> int: ...
    @property
    def given_on(self) -> date: ...
    @property
    def product_id(self) -> int: ...


def add_years(born: date, years: int) -> date:
    try:
        return born.replace(year=born.year + years)
    except ValueError:  # born on 29 February: of age on 1 March in a common year
        return date(born.year + years, 3, 1)


@dataclass(frozen=True)
class DoseFacts:
    """What the rules look at: the proposed dose and the student's other doses."""

    date_of_birth: date
    dose_number: int
    given_on: date
    product: Product
    product_other_name: str
    others: Sequence[Dose]  # the student's doses, without the one being edited


def judge_dose(
    facts: DoseFacts, products: Mapping[int, Product], today: date
) -> tuple[list[Finding], list[Finding]]:
    """(errors, warnings) for one dose. Errors refuse; warnings need the person's confirmation.

    The directive asks for each dose's day and product (4.9.1); what makes a dose's record right:
    a real day (not in the future, not before the programme), one dose per number and per day,
    not before the student's birth nor the product's minimum age, "doses in order" (a dose's day
    between its neighbours'), and — warnings — the product's minimum interval to the neighbours
    (`interval_rule`) and an earlier dose not recorded.
    """
    errors: list[Finding] = []
    warnings: list[Finding] = []
    product, given_on, number = facts.product, facts.given_on, facts.dose_number
    shown = given_on

    def error(code: str, **params: object) -> None:
        errors.append(Finding(code=code, params=params))

    errors.extend(dose_day_and_product(product, facts.product_other_name, given_on, today))

    by_number = {dose.dose_number: dose for dose in facts.others}
    if number in by_number:
        error("vaccines.duplicate_dose", dose_number=number, given_on=by_number[number].given_on)
    same_day = [dose for dose in facts.others if dose.given_on == given_on]
    if same_day and number not in by_number:
        error("vaccines.same_day", given_on=shown, dose_number=same_day[0].dose_number)

    if given_on < facts.date_of_birth:
        error("vaccines.before_birth", given_on=shown, date_of_birth=facts.date_of_birth)
    else:
        eligible_from = add_years(facts.date_of_birth, product.min_age_years)
        if given_on < eligible_from:
            error(
                "vaccines.too_young",
                given_on=shown,
                product=product.name,
                min_age=product.min_age_years,
                eligible_from=eligible_from,
            )

    if number in by_number:
        return errors, warnings  # the neighbours of a duplicate say nothing more
    previous = max(
        (d for d in facts.others if d.dose_number < number), key=lambda d: d.dose_number, default=None
    )
    following = min(
        (d for d in facts.others if d.dose_number > number), key=lambda d: d.dose_number, default=None
    )
    if previous is not None and given_on < previous.given_on:
        error(
            "vaccines.before_previous",
            dose_number=number,
            given_on=shown,
            previous_number=previous.dose_number,
            previous_on=previous.given_on,
        )
    if following is not None and given_on > following.given_on:
        error(
            "vaccines.after_next",
            dose_number=number,
            given_on=shown,
            next_number=following.dose_number,
            next_on=following.given_on,
        )
    for neighbour in (previous, following):
        if neighbour is None or neighbour.given_on == given_on:
            continue
        days = abs((given_on - neighbour.given_on).days)
        rule = interval_rule(product, products.get(neighbour.product_id))
        if days < rule.min_interval_days:
            warnings.append(
                Finding(
                    code="vaccines.short_interval",
                    params={
                        "dose_number": number,
                        "other_number": neighbour.dose_number,
                        "other_on": neighbour.given_on,
                        "days": days,
                        "minimum": rule.min_interval_days,
                        "product": rule.name,
                    },
                )
            )
    missing = [n for n in range(1, number) if n not in by_number]
    if missing:
        warnings.append(
            Finding(
                code="vaccines.missing_earlier",
                params={"dose_number": number, "missing": ", ".join(str(n) for n in missing)},
            )
        )
    return errors, warnings


def dose_day_and_product(product: Product, other_name: str, given_on: date, today: date) -> list[Finding]:
    """What refuses a dose whoever gets it (the class round refuses the whole round on it): the
    product «khác» without its name (4.9.1 asks «loại thuốc được tiêm»), a day in the future or
    before the programme's school year."""
    found: list[Finding] = []
    shown = given_on
    if product.code == OTHER_PRODUCT_CODE and not other_name:
        found.append(Finding(code="vaccines.other_needs_name"))
    if given_on > today:
        found.append(Finding(code="vaccines.future", params={"given_on": shown}))
    if given_on < DOSE_DATE_FLOOR:
        found.append(
            Finding(code="vaccines.too_early", params={"given_on": shown, "earliest": DOSE_DATE_FLOOR})
        )
    return found


def interval_rule(product: Product, neighbour: Product | None) -> Product:
    """The minimum interval between two doses (a row of `vaccine_product`); mixed products: the longer
    minimum interval of the two applies."""
    if neighbour is None or product.min_interval_days >= neighbour.min_interval_days:
        return product
    return neighbour
