"""Client strings end up in PostgreSQL text, which cannot hold NUL: refused up front (422)."""

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError


def _without_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise PydanticCustomError("string_nul", "must not contain NUL (U+0000) characters")
    return value


NoNul = AfterValidator(_without_nul)
