"""Messages as the sandbox page shows them: formatted text, buttons, files.

Messages carry plain text and entities, as Telegram returns them (bot.sandbox.entities turns the bot's
HTML into that). The page gets safe HTML rebuilt from the entities with only b, i, u, s, code, pre
and a (links only to http(s), tg and mailto addresses); every character of the text is escaped, so
nothing a person typed or the bot sent can become markup or script.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from bot.sandbox.entities import LINK_SCHEMES, entities_html, parse_html

JSON = dict[str, Any]


def telegram_html(text: str) -> str:
    """The page's HTML of a text the bot sends with parse_mode HTML."""
    return entities_html(*parse_html(text))


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
    text, caption = message.get("text"), message.get("caption")
    out: JSON = {
        "id": message["message_id"],
        "from_bot": from_bot,
        "date": message.get("date"),
        "edited": "edit_date" in message,
        "text": message.get("text"),
        "html": entities_html(str(text), message.get("entities")) if text is not None else None,
        "caption_html": entities_html(str(caption), message.get("caption_entities")) if caption else None,
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
