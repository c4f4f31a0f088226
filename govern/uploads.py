"""Uploaded files stay in memory, never in a temporary file."""

from __future__ import annotations

import io
from typing import IO

from flask import Request


class InMemoryUploadsRequest(Request):
    """The request class of the app: uploads are held in memory (bounded by MAX_CONTENT_LENGTH).

    Werkzeug spools uploads above 500 KB to a temporary file; an export of a password manager
    must never touch the disk, so no upload does.
    """

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None, content_length: int | None = None) -> IO[bytes]:
        return io.BytesIO()
