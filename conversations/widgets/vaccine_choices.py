"""The vaccine product and place choices and the dose number, as /vaccine and /vaccine_round ask them:
the product and place keyboards, what was tapped or typed, their labels, and a refusal or warning as
HTML-safe words."""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import ValidationError
from telegram import InlineKeyboardMarkup

from bot.errors import render_error
from bot.keyboards import rows
from bot.texts import t
from conversations.common import Answers, Flow, Question, Turn, Window, option_rows
from storage.enums import DosePlace
from storage.errors import DomainError
from storage.schemas.parsing import clean_text
from storage.schemas.vaccines import MAX_DOSE_NUMBER, DoseChange, VaccineProductOut
from storage.text import fold

PLACES: tuple[DosePlace, ...] = tuple(DosePlace)
OTHER_NAME_LENGTH = 200  # as DoseIn keeps it
_ONE_NUMBER = re.compile(r"\D*?(\d{1,3})\D*")


class ProductAnswers(Answers):
    """Answers of a flow that asks for a vaccine product (`remember_product`)."""

    product_id: int | None = None
    product: str | None = None  # its name as the list shows it
    product_needs_name: bool | None = None  # the "other" product: its name is typed
    product_other_name: str | None = None
    derived = Answers.derived | {"product", "product_needs_name"}  # the list's name, kept to show it


class DoseChoiceAnswers(ProductAnswers):
    """Answers of a flow that asks for the product and the place of a dose (`ProductAndPlace`)."""

    place: DosePlace | None = None


@dataclass(frozen=True)
class ProductStates:
    """The flow's state numbers the product-and-place questions use, and the state after them."""

    product: int
    product_name: int
    place: int
    following: int


D = TypeVar("D", bound=DoseChoiceAnswers)


class ProductAndPlace(Generic[D]):
    """The product (tapped, or typed part of its name; the "other" product asks for its name) and
    the place of a dose, as /vaccine and /vaccine_round ask them. The flow gives its own product
    question (`ask_product`) and, optionally, a check of the chosen product said at once (`check`)."""

    def __init__(
        self,
        flow: Flow[Any],
        states: ProductStates,
        *,
        ask_product: Question[D],
        check: Callable[[Turn[D]], Awaitable[None]] | None = None,
    ) -> None:
        self.flow, self.states = flow, states
        self.ask_product, self.check = ask_product, check

    def windows(self) -> dict[int, Window[D]]:
        f, s = self.flow, self.states
        return {
            s.product: Window(
                self.ask_product, [f.on_button(r"product:\d+$", self._product), f.on_text(self._product)]
            ),
            s.product_name: Window(self._ask_product_name, [f.on_text(self._product_name)]),
            s.place: Window(
                self._ask_place, [f.on_button(r"place:\w+$", self._place), f.on_text(self._place)]
            ),
        }

    async def _ask_product_name(self, turn: Turn[D]) -> None:
        await turn.reply(turn.text("vaccines.product_name_question"))

    async def _ask_place(self, turn: Turn[D]) -> None:
        await turn.reply(turn.text("vaccines.place_question"), place_keyboard(self.flow, turn.language))

    async def _product(self, turn: Turn[D]) -> int | None:
        product = await chosen_product(turn)
        remember_product(turn.answers, product)
        if product.needs_name:
            return await turn.ask(self.states.product_name)
        if self.check is not None:
            await self.check(turn)
        return await turn.advance(self.states.place)

    async def _product_name(self, turn: Turn[D]) -> int | None:
        turn.answers.product_other_name = other_product_name(turn)
        if self.check is not None:
            await self.check(turn)
        return await turn.advance(self.states.place)

    async def _place(self, turn: Turn[D]) -> int | None:
        place = chosen_place(turn)
        if place is None:
            return await turn.retry(turn.text("vaccines.place_hint"))
        turn.answers.place = place
        return await turn.advance(self.states.following)


def place_label(place: DosePlace | str, language: str) -> str:
    return t(f"vaccines.place.{DosePlace(place).value}", language)


def place_button_label(place: DosePlace, language: str) -> str:
    # The button has an icon; the value in a sentence does not ("📍 Nơi tiêm: Nơi khác").
    return t(f"vaccines.place_button.{place.value}", language)


def product_button_label(product: VaccineProductOut, language: str) -> str:
    return t("vaccines.product_other", language) if product.needs_name else product.name


def shown_product(answers: ProductAnswers) -> str:
    """The product as the person sees it: the typed name for "other", else the list's name (escaped)."""
    return html.escape(answers.product_other_name or answers.product or "")


def finding_text(exc: Exception, language: str) -> str:
    """A rendered refusal or warning, safe inside an HTML message."""
    return html.escape(render_error(exc, language), quote=False)


async def products_of(turn: Turn[Any]) -> list[VaccineProductOut]:
    """The active products, read once per update (a step's check and the next question both use them)."""
    found: list[VaccineProductOut] = await turn.once("products", turn.context.services.vaccines.products)
    return found


async def product_keyboard(turn: Turn[Any], flow: Flow[Any]) -> InlineKeyboardMarkup:
    products = await products_of(turn)
    options = [(product_button_label(p, turn.language), flow.cb("product", p.id)) for p in products]
    return rows(*option_rows(options, columns=2))


async def chosen_product(turn: Turn[Any]) -> VaccineProductOut:
    """The tapped product, or the one product of the list whose name holds what was typed."""
    products = await products_of(turn)
    if turn.update.callback_query is not None:
        found = [p for p in products if str(p.id) == turn.answer]
    else:
        typed = fold(turn.answer)
        found = [p for p in products if typed and not p.needs_name and typed in fold(p.name)]
    if len(found) != 1:
        raise DomainError("vaccines.unknown_product")
    return found[0]


def remember_product(answers: ProductAnswers, product: VaccineProductOut) -> None:
    answers.product_id, answers.product = product.id, product.name
    answers.product_needs_name = product.needs_name
    if not product.needs_name:
        answers.product_other_name = None


def other_product_name(turn: Turn[Any]) -> str:
    return clean_text(turn.answer, max_length=OTHER_NAME_LENGTH, required=True)


def place_keyboard(flow: Flow[Any], language: str) -> InlineKeyboardMarkup:
    return rows(*[[(place_button_label(place, language), flow.cb("place", place.value))] for place in PLACES])


def chosen_place(turn: Turn[Any]) -> DosePlace | None:
    """The tapped place, or the one place whose label holds what was typed; None when unclear."""
    if turn.update.callback_query is not None:
        return next((p for p in PLACES if p.value == turn.answer), None)
    typed = fold(turn.answer)
    found = [p for p in PLACES if typed and typed in fold(place_label(p, turn.language))]
    return found[0] if len(found) == 1 else None


def typed_dose_number(text: str) -> int | None:
    """`2`, `mui 2`, a tapped `2`: the number; anything else (no number, two numbers): None."""
    match = _ONE_NUMBER.fullmatch(text.strip())
    return int(match.group(1)) if match else None


def check_dose_number(number: int) -> None:
    """The schema's range rule (1..MAX_DOSE_NUMBER), as a DomainError."""
    try:
        DoseChange(dose_number=number)
    except ValidationError as exc:
        raise DomainError("vaccines.dose_number_range", value=number, maximum=MAX_DOSE_NUMBER) from exc
