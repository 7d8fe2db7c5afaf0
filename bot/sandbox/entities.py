"""Telegram's HTML parse mode as Telegram applies it: a text with tags becomes plain text plus
message entities (offsets and lengths in UTF-16 code units), and bad markup is refused with
"Bad Request: can't parse entities: …".

Telegram returns messages that way, so the bot sees `message.text` without tags and
`message.text_html` rebuilt from the entities; the page renders the entities back to safe HTML.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

# Tag -> entity type; `a`, `span`, `code` inside `pre`, `blockquote` and `tg-emoji` are special.
SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
OTHER_TAGS = {"a", "span", "blockquote", "tg-emoji"}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTRIBUTE = re.compile(r"""\s*([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")


class HtmlParseError(ValueError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"Bad Request: can't parse entities: {detail}")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    offset: int  # in UTF-16 code units of the plain text so far
    entity: JSON | None


@dataclass
class _Parser:
    source: str
    out: list[str] = field(default_factory=list)
    length: int = 0  # UTF-16 length of `out`
    stack: list[_Open] = field(default_factory=list)
    entities: list[JSON] = field(default_factory=list)

    def byte_offset(self, index: int) -> int:
        return len(self.source[:index].encode())

    def add(self, text: str) -> None:
        self.out.append(text)
        self.length += utf16_len(text)

    def parse(self) -> tuple[str, list[JSON]]:
        text, i = self.source, 0
        while i < len(text):
            char = text[i]
            if char == "&":
                i = self.entity(i)
            elif char == "<":
                i = self.end_tag(i) if text.startswith("</", i) else self.start_tag(i)
            else:
                j = i
                while j < len(text) and text[j] not in "&<":
                    j += 1
                self.add(text[i:j])
                i = j
        if self.stack:
            raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def entity(self, i: int) -> int:
        match = re.match(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);", self.source[i:])
        if match:
            name = match.group(1)
            value: str | None = None
            if name.startswith("#x"):
                value = _codepoint(int(name[2:], 16))
            elif name.startswith("#"):
                value = _codepoint(int(name[1:]))
            else:
                value = NAMED_ENTITIES.get(name)
            if value is not None:
                self.add(value)
                return i + match.end()
        self.add("&")  # not an entity Telegram knows: a literal ampersand
        return i + 1

    def start_tag(self, i: int) -> int:
        close = self.source.find(">", i)
        body = self.source[i + 1 : close] if close != -1 else self.source[i + 1 :]
        name = re.match(r"[^\s>/]*", body).group(0).lower()  # type: ignore[union-attr]  # matches even ""
        if close == -1 or (name not in SIMPLE_TAGS and name not in OTHER_TAGS):
            raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {self.byte_offset(i)}')
        attributes = {
            m.group(1).lower(): (m.group(2) or m.group(3) or m.group(4) or "")
            for m in _ATTRIBUTE.finditer(body[len(name) :].rstrip("/"))
        }
        entity: JSON | None = None
        if name in SIMPLE_TAGS:
            entity = {"type": SIMPLE_TAGS[name]}
            if name == "code" and self.stack and self.stack[-1].tag == "pre":
                language = attributes.get("class", "")
                pre = self.stack[-1].entity
                if language.startswith("language-") and pre is not None:
                    pre["language"] = _unescape(language[len("language-") :])
                entity = None  # code inside pre is part of the pre entity
        elif name == "a":
            url = _unescape(attributes.get("href", ""))
            entity = {"type": "text_link", "url": url} if url else None
        elif name == "span":
            if attributes.get("class") != "tg-spoiler":
                raise HtmlParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {self.byte_offset(i)}'
                )
            entity = {"type": "spoiler"}
        elif name == "blockquote":
            entity = {"type": "expandable_blockquote" if "expandable" in attributes else "blockquote"}
        elif name == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attributes.get("emoji-id", "")}
        self.stack.append(_Open(name, self.length, entity))
        return close + 1

    def end_tag(self, i: int) -> int:
        close = self.source.find(">", i)
        if close == -1:
            raise HtmlParseError(f"Unclosed end tag at byte offset {self.byte_offset(i)}")
        name = self.source[i + 2 : close].strip().lower()
        if not self.stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {self.byte_offset(i)}")
        opened = self.stack.pop()
        if opened.tag != name:
            raise HtmlParseError(
                f'Unmatched end tag at byte offset {self.byte_offset(i)}, expected "</{opened.tag}>", '
                f'found "</{name}>"'
            )
        length = self.length - opened.offset
        if opened.entity is not None and length > 0:
            self.entities.append({**opened.entity, "offset": opened.offset, "length": length})
        return close + 1


def _codepoint(number: int) -> str | None:
    return chr(number) if 0 < number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF else None


def _unescape(value: str) -> str:
    return html.unescape(value)


def parse_html(text: str) -> tuple[str, list[JSON]]:
    """Plain text and entities, as Telegram makes them of a text sent with parse_mode HTML."""
    return _Parser(text).parse()


# --- back to HTML for the page ----------------------------------------------------------------------

PAGE_TAGS = {
    "bold": "b",
    "italic": "i",
    "underline": "u",
    "strikethrough": "s",
    "code": "code",
    "pre": "pre",
    "text_link": "a",
}
LINK_SCHEMES = {"http", "https", "tg", "mailto"}


def _open_tag(entity: JSON) -> str:
    tag = PAGE_TAGS[entity["type"]]
    if tag != "a":
        return f"<{tag}>"
    url = str(entity.get("url") or "").strip()
    if urllib.parse.urlsplit(url).scheme.lower() in LINK_SCHEMES:
        return f'<a href="{html.escape(url)}" target="_blank" rel="noopener noreferrer">'
    return "<a>"


def entities_html(text: str, entities: list[JSON] | None) -> str:
    """Safe HTML of a text and its entities: only b, i, u, s, code, pre and a; all text escaped.
    Entities of other kinds (spoilers, quotes, commands) show as their plain text."""
    shown = sorted(
        (e for e in entities or [] if e.get("type") in PAGE_TAGS and int(e.get("length") or 0) > 0),
        key=lambda e: (int(e["offset"]), -int(e["length"])),
    )
    units = text.encode("utf-16-le")
    total = len(units) // 2
    boundaries = sorted(
        {0, total} | {int(e["offset"]) for e in shown} | {int(e["offset"]) + int(e["length"]) for e in shown}
    )
    out: list[str] = []
    stack: list[JSON] = []
    pending = list(shown)
    for position, end in zip(boundaries, [*boundaries[1:], total], strict=True):
        # Close what ends here (reopening what was opened inside it and goes on).
        ending = [e for e in stack if int(e["offset"]) + int(e["length"]) <= position]
        if ending:
            keep = [e for e in stack if e not in ending]
            for entity in reversed(stack):
                out.append(f"</{PAGE_TAGS[entity['type']]}>")
            stack = []
            for entity in keep:
                out.append(_open_tag(entity))
                stack.append(entity)
        while pending and int(pending[0]["offset"]) <= position:
            entity = pending.pop(0)
            out.append(_open_tag(entity))
            stack.append(entity)
        if end > position:
            segment = units[position * 2 : end * 2].decode("utf-16-le", errors="replace")
            out.append(html.escape(segment, quote=False))
    for entity in reversed(stack):
        out.append(f"</{PAGE_TAGS[entity['type']]}>")
    return "".join(out)
