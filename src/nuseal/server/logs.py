"""Structured logs: one JSON object per line on stderr, for the access log and everything else the server logs.

Fields given as ``extra={"fields": {...}}`` are merged into the object, so an access-log line is
``{"time": ..., "level": "INFO", "logger": "nuseal.access", "message": "request", "method": "GET", ...}``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            document.update(fields)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send every log record (nuseal's, uvicorn's, SQLAlchemy's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))  # "Context impl SQLiteImpl." per check
    # The JSON lines use no caller file/line, thread or process names: the logging HOWTO's "Optimization" switches
    # skip computing them for every record (the access log writes one per request; the caller lookup walks the
    # stack each time).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
