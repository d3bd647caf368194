"""Base URLs in a venue's config: the scheme checked, the trailing slash dropped.

``rest_url: HttpBaseUrl | None = None`` in a plugin's config model refuses
``ftp://x`` (or a URL without a host) with one line naming the key.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _checked(*schemes: str) -> AfterValidator:
    prefixes = tuple(f"{s}://" for s in schemes)

    def check(value: str) -> str:
        if not value.startswith(prefixes) or not value.split("://", 1)[1].strip("/"):
            raise ValueError(f"must start with {' or '.join(prefixes)} and name a host, got {value!r}")
        return value.rstrip("/")

    return AfterValidator(check)


HttpBaseUrl = Annotated[str, _checked("http", "https")]
WsBaseUrl = Annotated[str, _checked("ws", "wss")]
