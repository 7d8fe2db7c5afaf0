"""A device type as the device flows (/donation, /handover, /return, /my) name it."""

from __future__ import annotations

from bot.texts import t
from storage.enums import DeviceType


def device_name(device_type: DeviceType | str, language: str) -> str:
    return t(f"devices.device_name.{DeviceType(device_type).value}", language)
