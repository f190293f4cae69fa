"""Request bodies → JSON documents, with every way a body can fail to parse made one 400.

``json.loads`` fails in three ways, all of them the client's doing: ``ValueError`` for text that
is not JSON (and for integers past Python's 4,300-digit limit), ``UnicodeDecodeError`` for bytes
that are no Unicode encoding, and ``RecursionError`` for nesting deeper than the interpreter's
recursion limit — 100,000 ``[`` are only 100 KB, far inside the payload limit. Each route used
to catch the first two itself and let the third become a 500; they all parse here now.
"""

from __future__ import annotations

import json
from typing import Any

from sinfer.errors import BadRequestError


def parse(body: bytes | str, what: str = "body") -> Any:
    """The JSON document in ``body``; :class:`BadRequestError` saying why when there is none."""
    try:
        return json.loads(body)
    except RecursionError:
        raise BadRequestError(f"{what} is not valid JSON: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(f"{what} is not valid JSON: {exc}") from None
