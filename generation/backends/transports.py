"""Transports: the only code that talks HTTP to a chat endpoint.

Every backend speaks the OpenAI chat API. TGI, vLLM and the embedded llama.cpp server are reached by
default with :class:`HTTPTransport` (one aiohttp session per endpoint posting to ``/chat/completions``: the
lowest per-request overhead, see ``bench/overhead.py``) or, with ``backend.transport: inference_client``,
with ``huggingface_hub.AsyncInferenceClient``; OpenAI itself with the ``openai`` SDK. None of them retries:
:mod:`generation.backends.client` owns retries, timeouts, concurrency and accounting.
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


def _parse_completion(data: bytes) -> Completion:
    """A chat completion from a raw JSON body; anything unusable is a :class:`MalformedResponseError`."""
    try:
        body = json.loads(data)
        choice = body["choices"][0]
        content = choice["message"].get("content")
        usage = body.get("usage") or {}
        if content is not None and not isinstance(content, str):
            raise MalformedResponseError(f"message content is {type(content).__name__}, expected text")
        return Completion(
            text=content or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except MalformedResponseError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedResponseError(f"unparseable response: {type(exc).__name__}") from None


class HTTPTransport:
    """A shared ``aiohttp`` session posting OpenAI chat requests to ``{base_url}/chat/completions``.

    The session keeps connections alive; the client layer bounds how many requests are in flight.
    """

    def __init__(self, model: str, base_url: str, api_key: str | None, timeout_s: float):
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: Any = None  # created inside the running event loop

    def _get_session(self) -> Any:
        if self._session is None or self._session.closed:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers=self._headers,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": False,
        }
        if seed is not None:
            payload["seed"] = seed
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        async with self._get_session().post(self.url, data=body) as response:
            data = await response.read()
            if response.status >= 400:
                raise _status_error(response.status, data.decode("utf-8", "replace"))
        return _parse_completion(data)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def probe_health(session: Any, base_url: str, timeout_s: float) -> bool:
    """Whether an endpoint is healthy: ``GET /health`` at the server root answers 200 (TGI, vLLM, llama-server),
    or, where there is no such route (404/405), ``GET {base_url}/models`` answers 200."""
    import aiohttp

    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.get(f"{root}/health", timeout=timeout) as response:
            await response.read()
            if response.status not in (404, 405):
                return response.status == 200
        async with session.get(f"{base_url.rstrip('/')}/models", timeout=timeout) as response:
            await response.read()
            return response.status == 200
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        return False


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

    async def create(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None, **extra: Any) -> Any:
        """One chat completion (the SDK's object), with the SDK's errors mapped to the client layer's."""
        openai = self._openai
        try:
            return await self._client.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=seed,
                **extra,
            )
        except openai.APITimeoutError as exc:
            raise asyncio.TimeoutError(str(exc)) from exc
        except openai.APIStatusError as exc:
            raise _status_error(exc.status_code, exc.message) from exc
        except openai.APIResponseValidationError as exc:
            raise MalformedResponseError(str(exc)) from exc

    async def complete(self, messages: list[dict[str, str]], sampling: SamplingConfig, seed: int | None) -> Completion:
        output = await self.create(messages, sampling, seed)
        return _completion_from(output.choices, output.usage)

    async def aclose(self) -> None:
        await self._client.close()


OVERLOAD_STATUS = {429, 503}


def is_overload(exc: BaseException) -> bool:
    """Whether the endpoint said it is too busy (HTTP 429/503): a reason to send it fewer requests."""
    return isinstance(exc, RetryableHTTPError) and exc.status in OVERLOAD_STATUS


def is_retryable(exc: BaseException) -> bool:
    """Whether a failed request may succeed if sent again (timeouts, 429/5xx, broken connections, bad bodies)."""
    if isinstance(exc, (asyncio.TimeoutError, RetryableHTTPError, MalformedResponseError, ConnectionError)):
        return True
    if isinstance(exc, PermanentRequestError):
        return False
    try:
        import aiohttp

        if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
            return True
    except ImportError:
        pass
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
