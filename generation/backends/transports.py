"""Transports: the only code that talks HTTP to a chat endpoint.

Every backend speaks the OpenAI chat API. TGI, vLLM and the embedded llama.cpp server are reached with
``huggingface_hub.AsyncInferenceClient``; OpenAI itself with the ``openai`` SDK. Both are used without
their own retries: :mod:`generation.backends.client` owns retries, timeouts and accounting.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Protocol

from generation.config import SamplingConfig


class MalformedResponseError(Exception):
    """The endpoint answered 2xx but the body is not a usable chat completion."""


class PermanentRequestError(Exception):
    """The endpoint refused the request in a way retrying will not fix (4xx other than 408/409/429)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class RetryableHTTPError(Exception):
    """HTTP 408/409/429/5xx."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


RETRYABLE_STATUS = {408, 409, 425, 429}


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int


class Transport(Protocol):
    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion: ...

    async def aclose(self) -> None: ...


def _status_error(status: int, message: str) -> Exception:
    first_line = (message or "").strip().splitlines()[0][:200] if message and message.strip() else "no details"
    if status in RETRYABLE_STATUS or status >= 500:
        return RetryableHTTPError(status, first_line)
    return PermanentRequestError(status, first_line)


def _completion_from(choices: Any, usage: Any) -> Completion:
    if not choices:
        raise MalformedResponseError("response has no choices")
    choice = choices[0]
    message = getattr(choice, "message", None)
    content = getattr(message, "content", None)
    if content is not None and not isinstance(content, str):
        raise MalformedResponseError(f"message content is {type(content).__name__}, expected text")
    return Completion(
        text=content or "",
        finish_reason=getattr(choice, "finish_reason", None),
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
    )


class InferenceClientTransport:
    """``huggingface_hub.AsyncInferenceClient`` against an OpenAI-compatible base URL (TGI, vLLM, llama.cpp)."""

    def __init__(self, model: str, base_url: str, api_key: str | None, timeout_s: float):
        from huggingface_hub import AsyncInferenceClient

        self.model = model
        self._client = AsyncInferenceClient(base_url=base_url, api_key=api_key, timeout=timeout_s)

    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion:
        from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

        try:
            output = await self._client.chat_completion(
                messages=messages,
                model=self.model,
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=seed,
            )
        except InferenceTimeoutError as exc:
            raise asyncio.TimeoutError(str(exc)) from exc
        except HfHubHTTPError as exc:
            response = getattr(exc, "response", None)
            status = getattr(response, "status_code", None)
            if status is None:
                raise
            raise _status_error(status, getattr(response, "text", "") or str(exc)) from exc
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise MalformedResponseError(f"unparseable response: {type(exc).__name__}") from exc
        return _completion_from(getattr(output, "choices", None), getattr(output, "usage", None))

    async def aclose(self) -> None:
        await self._client.close()


class OpenAITransport:
    """The ``openai`` SDK, for OpenAI itself (or any endpoint a user prefers to reach through it)."""

    def __init__(self, model: str, base_url: str | None, api_key: str | None, timeout_s: float):
        import openai

        self.model = model
        self._openai = openai
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0)

    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion:
        openai = self._openai
        try:
            output = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=seed,
            )
        except openai.APITimeoutError as exc:
            raise asyncio.TimeoutError(str(exc)) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.message) from exc
        except openai.APIResponseValidationError as exc:
            raise MalformedResponseError(str(exc)) from exc
        return _completion_from(output.choices, output.usage)

    async def aclose(self) -> None:
        await self._client.close()


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed request may succeed if sent again (timeouts, 429/5xx, broken connections, bad bodies)."""
    if isinstance(exc, (asyncio.TimeoutError, RetryableHTTPError, MalformedResponseError, ConnectionError)):
        return True
    if isinstance(exc, PermanentRequestError):
        return False
    try:
        import httpx2

        if isinstance(exc, httpx2.TransportError):
            return True
    except ImportError:  # older huggingface_hub releases use httpx/aiohttp
        pass
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return True
    except ImportError:
        pass
    try:
        import openai

        if isinstance(exc, openai.APIConnectionError):
            return True
    except ImportError:
        pass
    return False
