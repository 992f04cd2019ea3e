"""Keep secrets (chat tokens, signing secrets) out of every log record.

A filter on a logger sees only the records made on that very logger, not its children's
(``slack_sdk.web.*``, ``httpx`` loggers made later), so the redactor hooks the log
record factory instead: every record is cleaned where it is made, whichever logger makes
it. Secrets are matched as written and URL-quoted (tokens travel inside URLs).

``url_password``/``hide_password`` find and mask the password of a database URL as
written, without parsing it (so even a URL the driver refuses can be shown safely).
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

MARK = "<redacted>"
# scheme://user:password@host...: the userinfo ends at the last "@" of the authority.
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_QUERY_SECRET = re.compile(r"(?P<key>[?&](?:password|sslpassword)=)(?P<value>[^&#]*)")


def url_password(url: str) -> str | None:
    """The password in a URL's userinfo, exactly as written (still URL-quoted)."""
    found = _USERINFO.match(url)
    if found is None or ":" not in found["userinfo"]:
        return None
    return found["userinfo"].split(":", 1)[1] or None


def url_secrets(url: str) -> list[str]:
    """Every secret written in a URL (its password, ``password=``/``sslpassword=``), as
    written and unquoted, longest first: what a message about the URL must not show."""
    raw = [url_password(url), *(m["value"] for m in _QUERY_SECRET.finditer(url))]
    forms = {form for s in raw if s for form in (s, urllib.parse.unquote(s))}
    return sorted(forms, key=len, reverse=True)


def hide_password(url: str) -> str:
    """The URL with its password (and ``password=`` parameters) shown as ``***``."""
    found = _USERINFO.match(url)
    if found is not None and ":" in found["userinfo"]:
        user = found["userinfo"].split(":", 1)[0]
        url = f"{found['scheme']}{user}:***@{url[found.end() :]}"
    return _QUERY_SECRET.sub(lambda m: m["key"] + "***", url)


class Redactor:
    """Replaces the given secrets in log messages, tracebacks and stack traces."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {form for s in secrets if s for form in (s, urllib.parse.quote(s, safe=""))}
        self._secrets = sorted(forms, key=len, reverse=True)
        self._active = False
        self._hooked = False

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MARK)
        return text

    def install(self) -> None:
        """Clean every record made from now on."""
        self._active = True
        if self._hooked:
            return
        self._hooked = True
        make = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            if self._active:
                self.clean(record)
            return record

        logging.setLogRecordFactory(factory)

    def uninstall(self) -> None:
        self._active = False  # the factory stays in the chain and passes records through

    def clean(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's to report, not ours
            return
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
