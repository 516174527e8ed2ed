"""The JSON answer of ``phudge serve``: every response, error answers included, is written by it."""

from __future__ import annotations

import json

from fastapi.responses import JSONResponse


class AsciiJSON(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate echoed back (in an ``id``, say) is
    written as ``\\udXXX`` instead of failing to encode."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")
