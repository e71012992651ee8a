"""Error types and the exit codes the CLI maps them to."""

from __future__ import annotations

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_FAILURE = 1  # a run failed while working (backend unavailable, I/O error)
EXIT_USAGE = 2  # bad command line, config or input; nothing was run
EXIT_SHORTFALL = 3  # --strict and the target question count was not met
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM


class SynthgenError(Exception):
    """Base class: an error with a one-line message for the user."""

    exit_code = EXIT_FAILURE


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
