"""Messages as the sandbox page shows them: Telegram's HTML made safe, buttons, files.

The bot sends every text with parse_mode HTML (bot.app's defaults). Telegram understands a few tags;
the page renders only b, i, u, s, code, pre and a (with their aliases strong, em, ins, strike, del),
drops the tags of Telegram's other formatting (spoilers, quotes) while keeping their text, and shows
anything else as the literal text it is. Links keep only http(s), tg and mailto addresses.
"""

from __future__ import annotations

import html
import urllib.parse
from html.parser import HTMLParser
from typing import Any

JSON = dict[str, Any]

ALLOWED_TAGS = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "code": "code",
    "pre": "pre",
    "a": "a",
}
# Telegram formats these too; the page shows their text without the formatting.
DROPPED_TAGS = {"span", "tg-spoiler", "blockquote", "tg-emoji"}
LINK_SCHEMES = {"http", "https", "tg", "mailto"}


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        mapped = ALLOWED_TAGS.get(tag)
        if mapped is None:
            if tag not in DROPPED_TAGS:
                self.out.append(html.escape(self.get_starttag_text() or f"<{tag}>"))
            return
        if mapped == "a":
            href = dict(attrs).get("href") or ""
            if urllib.parse.urlsplit(href.strip()).scheme.lower() in LINK_SCHEMES:
                self.out.append(
                    f'<a href="{html.escape(href.strip())}" target="_blank" rel="noopener noreferrer">'
                )
            else:
                self.out.append("<a>")
        else:
            self.out.append(f"<{mapped}>")
        self.open.append(mapped)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS and tag not in DROPPED_TAGS:
            self.out.append(html.escape(self.get_starttag_text() or f"<{tag}/>"))

    def handle_endtag(self, tag: str) -> None:
        mapped = ALLOWED_TAGS.get(tag)
        if mapped is None:
            if tag not in DROPPED_TAGS:
                self.out.append(html.escape(f"</{tag}>"))
            return
        if mapped not in self.open:
            return  # a closing tag without its opening one: nothing to close
        while self.open:
            last = self.open.pop()
            self.out.append(f"</{last}>")
            if last == mapped:
                break

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))

    def handle_comment(self, data: str) -> None:
        self.out.append(html.escape(f"<!--{data}-->", quote=False))

    def handle_decl(self, decl: str) -> None:
        self.out.append(html.escape(f"<!{decl}>", quote=False))

    def handle_pi(self, data: str) -> None:
        self.out.append(html.escape(f"<?{data}>", quote=False))

    def unknown_decl(self, data: str) -> None:
        self.out.append(html.escape(f"<![{data}]>", quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def telegram_html(text: str) -> str:
    """Safe HTML for a text sent with parse_mode HTML."""
    sanitizer = _Sanitizer()
    sanitizer.feed(text)
    return sanitizer.result()


def plain_html(text: str) -> str:
    """A person's own message: shown as typed."""
    return html.escape(text, quote=False)


def file_url(file_id: str, *, download: bool = True) -> str:
    return f"/api/files/{urllib.parse.quote(file_id)}" + ("?download=1" if download else "")


def page_buttons(message: JSON) -> list[list[JSON]]:
    """The message's inline keyboard: callback buttons and link buttons (other kinds are not used)."""
    out: list[list[JSON]] = []
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        page_row: list[JSON] = []
        for button in row:
            if "callback_data" in button:
                page_row.append({"text": str(button["text"]), "data": str(button["callback_data"])})
            elif "url" in button:
                url = str(button["url"])
                safe = urllib.parse.urlsplit(url).scheme.lower() in LINK_SCHEMES
                page_row.append({"text": str(button["text"]), "url": url if safe else None})
            else:
                page_row.append({"text": str(button["text"])})
        if page_row:
            out.append(page_row)
    return out


def page_message(message: JSON) -> JSON:
    """One chat message as the page gets it."""
    from_bot = bool(message.get("from", {}).get("is_bot"))
    to_html = telegram_html if from_bot else plain_html
    out: JSON = {
        "id": message["message_id"],
        "from_bot": from_bot,
        "date": message.get("date"),
        "edited": "edit_date" in message,
        "text": message.get("text"),
        "html": to_html(str(message["text"])) if "text" in message else None,
        "caption_html": to_html(str(message["caption"])) if message.get("caption") else None,
        "buttons": page_buttons(message),
        "document": None,
        "photo": None,
    }
    document = message.get("document")
    if document:
        out["document"] = {
            "file_id": document["file_id"],
            "name": document.get("file_name") or document["file_id"],
            "size": document.get("file_size"),
            "mime_type": document.get("mime_type"),
            "url": file_url(document["file_id"]),
        }
    photo = message.get("photo")
    if photo:
        largest = max(photo, key=lambda size: size.get("width", 0) * size.get("height", 0))
        out["photo"] = {
            "file_id": largest["file_id"],
            "url": file_url(largest["file_id"], download=False),
            "download_url": file_url(largest["file_id"]),
        }
    return out


def keyboard_labels(markup: JSON | None) -> list[list[str]]:
    """The labels of a reply keyboard, row by row."""
    if not markup:
        return []
    return [
        [str(b["text"]) if isinstance(b, dict) else str(b) for b in row] for row in markup.get("keyboard", [])
    ]
