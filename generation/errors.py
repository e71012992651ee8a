"""Error types and the exit codes the CLI maps them to."""

from __future__ import annotations

import logging
import os
import re

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILURE = 1  # a run failed while working (backend unavailable, I/O error)
EXIT_USAGE = 2  # bad command line, config or input; nothing was run
EXIT_SHORTFALL = 3  # --strict and the target question count was not met
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM


class SynthgenError(Exception):
    """Base class: an error with a one-line message for the user (secret values in it are masked)."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: object = "") -> None:
        super().__init__(redact(str(message)))


class ConfigError(SynthgenError):
    """A config file, key or value is wrong; raised before any work starts."""

    exit_code = EXIT_USAGE


class InputDataError(SynthgenError):
    """The input dataset or CSV is unusable (missing column, empty, undecodable)."""

    exit_code = EXIT_USAGE


class BackendUnavailableError(SynthgenError):
    """No backend (primary or fallback) can answer requests any more."""


class BackendRequestError(SynthgenError):
    """A request was refused for a reason retrying cannot fix (e.g. HTTP 400)."""


class ServerStartError(SynthgenError):
    """A model server process did not come up."""


class OutputWriteError(SynthgenError):
    """A file of the run folder could not be written (disk full, permissions); the previous file is intact."""


# ------------------------------------------------------------------------------------------- secrets

# Environment variables whose values are secrets: API keys, tokens, passwords. A value is only masked
# when it is long enough to be a credential (short values such as "1" would mask ordinary text).
SECRET_NAME = re.compile(r"(API_?KEY|(^|_)KEY$|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)
_MIN_SECRET_LEN = 8
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every later error message and log line (e.g. a key read from ``api_key_env``)."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _extra_secrets.add(value)


def known_secrets() -> list[str]:
    """Secret values this process holds: registered ones and those of secret-looking environment variables."""
    values = set(_extra_secrets)
    for name, value in os.environ.items():
        if SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN:
            values.add(value)
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Logging filter that masks secret values in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
