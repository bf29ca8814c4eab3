"""Pluggable judge for open-ended captions (video-SALMONN-2).

video-SALMONN-2 scores a caption by the share of the reference's atomic events it misses plus the share
of its own events that are hallucinated (lower is better). That needs a language-model judge; any
OpenAI-compatible chat endpoint the user names works (plain urllib, no SDK). Without a judge the report
says "not scored": it never invents a number. Verdicts are cached next to the rows, keyed by a hash of
the caption, so a report rerun only asks about new or changed captions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from .scoring import Verdict

__all__ = [
    "Judge",
    "JudgeError",
    "OpenAICompatibleJudge",
    "cached_verdicts",
    "judge_api_key",
    "judge_rows",
    "load_verdicts",
    "parse_verdict",
    "url_for_logs",
]

logger = logging.getLogger(__name__)

_SYSTEM = "You are a strict, careful evaluator of detailed video captions. You answer with JSON only."
_TEMPLATE = """A model wrote a caption for a video. Compare it with the reference.

Reference description:
<<<
{reference}
>>>

Reference atomic events ({count}):
{events}

Candidate caption:
<<<
{caption}
>>>

1. For each reference atomic event, decide whether the candidate caption states it (a paraphrase counts;
   a vaguer or contradicting statement does not). "missed" = number of reference events not stated.
2. Split the candidate caption into atomic events (single facts about what is seen or heard).
   "caption_events" = their number. "hallucinated" = how many of them contradict the reference or describe
   something that neither the reference description nor the reference events contain.

Reply with one JSON object and nothing else:
{{"missed": <int>, "caption_events": <int>, "hallucinated": <int>}}"""


class JudgeError(RuntimeError):
    """The judge could not be reached or gave no usable verdict."""


class Judge(Protocol):
    """Anything that turns (caption, reference text, reference events) into a Verdict."""

    name: str

    def __call__(self, caption: str, reference: str, events: Sequence[str]) -> Verdict: ...


def build_prompt(caption: str, reference: str, events: Sequence[str]) -> str:
    listed = "\n".join(f"{i + 1}. {event}" for i, event in enumerate(events))
    return _TEMPLATE.format(reference=reference, count=len(events), events=listed, caption=caption)


def parse_verdict(text: str, reference_events: int) -> Verdict:
    """Read the judge's JSON reply (tolerating code fences or prose around it)."""
    match = re.search(r"\{[^{}]*\}", text, re.DOTALL)
    if not match:
        raise JudgeError(f"judge reply has no JSON object: {text[:200]!r}")
    try:
        data = json.loads(match.group(0))
        missed = int(data["missed"])
        caption_events = int(data["caption_events"])
        hallucinated = int(data["hallucinated"])
    except (ValueError, KeyError, TypeError) as exc:
        raise JudgeError(f"judge reply is not a verdict ({exc}): {text[:200]!r}") from exc
    return Verdict(
        missed=min(max(missed, 0), reference_events),
        reference_events=reference_events,
        hallucinated=min(max(hallucinated, 0), max(caption_events, 0)),
        caption_events=max(caption_events, 0),
    )


DEFAULT_KEY_ENV = "OPENAI_API_KEY"

_SECRET_QUERY = re.compile(r"(key|token|secret|password|passwd|pwd|sig|signature|auth)", re.I)


def url_for_logs(url: str) -> str:
    """`url` as it may be shown: no user name or password, secret-looking query values masked."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if _SECRET_QUERY.search(name) else (f"{name}={value}" if value else name)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _split_credentials(url: str) -> tuple[str, str | None]:
    """(url without user:password, a Basic Authorization value for them or None): urllib cannot send
    credentials written into a URL, and a URL is logged."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.netloc.rpartition("@")[2]
    clean = urllib.parse.urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def judge_api_key(url: str, key_env: str | None) -> str | None:
    """The API key to send to the judge at `url`, or None.

    The default variable (OPENAI_API_KEY) goes to https URLs only: a key sent over plain http can be
    read on the way, and an http judge is usually a local server that needs none. Naming a variable
    explicitly (`--judge-key-env`) sends it to that URL whatever the scheme, and it must be set.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"--judge-url {url_for_logs(url)!r} must start with https:// or http://")
    if key_env is not None:
        key = os.environ.get(key_env)
        if not key:
            raise ValueError(f"--judge-key-env {key_env}: that environment variable is not set")
        if scheme != "https":
            logger.warning(
                "sending the API key from $%s over plain http (asked with --judge-key-env)", key_env
            )
        return key
    key = os.environ.get(DEFAULT_KEY_ENV)
    if key and scheme != "https":
        logger.warning(
            "not sending $%s to %s: plain http; pass --judge-key-env %s to send it anyway",
            DEFAULT_KEY_ENV,
            url_for_logs(url),
            DEFAULT_KEY_ENV,
        )
        return None
    return key


class OpenAICompatibleJudge:
    """Judge through `POST {base_url}/chat/completions` of any OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        opener: Callable[..., Any] | None = None,
    ) -> None:
        base_url, self._basic_auth = _split_credentials(base_url.rstrip("/"))
        self.base_url = base_url
        self.model = model
        self.name = model
        self._api_key = api_key
        self._timeout = timeout
        self._retries = retries
        self._open = opener or urllib.request.urlopen

    def _complete(self, prompt: str) -> str:
        body = json.dumps(
            {
                "model": self.model,
                "temperature": 0,
                "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}],
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        elif self._basic_auth:
            headers["Authorization"] = self._basic_auth
        url = f"{self.base_url}/chat/completions"
        last: Exception | None = None
        for attempt in range(self._retries):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with self._open(request, timeout=self._timeout) as response:
                    payload = json.loads(response.read().decode())
                return payload["choices"][0]["message"]["content"]
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code not in (408, 409, 429) and exc.code < 500:
                    break  # a client error will not fix itself
            except (urllib.error.URLError, TimeoutError, KeyError, IndexError, ValueError) as exc:
                last = exc
            time.sleep(min(2**attempt, 30))
        raise JudgeError(f"judge at {url_for_logs(url)} failed: {last}")

    def __call__(self, caption: str, reference: str, events: Sequence[str]) -> Verdict:
        return parse_verdict(self._complete(build_prompt(caption, reference, events)), len(events))


def _caption_key(row: dict[str, Any]) -> str:
    return hashlib.sha256((row.get("response") or "").encode()).hexdigest()[:16]


def _cache_path(bench_dir: Path, judge_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", judge_name)[:80] or "judge"
    return Path(bench_dir) / f"judge-{slug}.jsonl"


def load_verdicts(
    bench_dir: Path, judge_name: str | None = None
) -> dict[str, dict[tuple[str, str], Verdict]]:
    """Cached verdicts of a benchmark folder: judge name -> (id, caption hash) -> Verdict."""
    pattern = "judge-*.jsonl" if judge_name is None else _cache_path(bench_dir, judge_name).name
    found: dict[str, dict[tuple[str, str], Verdict]] = {}
    for path in sorted(Path(bench_dir).glob(pattern)):
        name = path.stem.removeprefix("judge-")
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            found.setdefault(name, {})[(item["id"], item["caption_sha"])] = Verdict(**item["verdict"])
    return found


def cached_verdicts(rows: list[dict[str, Any]], cache: dict[tuple[str, str], Verdict]) -> dict[str, Verdict]:
    """id -> Verdict for the rows whose current caption has a cached verdict."""
    found = {}
    for row in rows:
        verdict = cache.get((row["id"], _caption_key(row)))
        if row.get("status") == "ok" and verdict is not None:
            found[row["id"]] = verdict
    return found


def judge_rows(
    rows: list[dict[str, Any]], judge: Judge, bench_dir: Path, workers: int = 4
) -> dict[str, Verdict]:
    """Verdicts for every successful caption row, asking the judge only about uncached captions."""
    path = _cache_path(bench_dir, judge.name)
    cached = load_verdicts(bench_dir, judge.name).get(path.stem.removeprefix("judge-"), {})
    verdicts = cached_verdicts(rows, cached)
    todo = [row for row in rows if row.get("status") == "ok" and row["id"] not in verdicts]
    if not todo:
        return verdicts
    logger.info("asking judge %s about %d captions (%d cached)", judge.name, len(todo), len(verdicts))

    def ask(row: dict[str, Any]) -> tuple[dict[str, Any], Verdict | None]:
        try:
            return row, judge(row.get("response") or "", row.get("reference", ""), row.get("events", []))
        except JudgeError as exc:
            logger.warning("judge failed on %s: %s", row["id"], exc)
            return row, None

    failures = 0
    with path.open("a", encoding="utf-8") as handle, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for row, verdict in pool.map(ask, todo):
            if verdict is None:
                failures += 1
                continue
            verdicts[row["id"]] = verdict
            item = {"id": row["id"], "caption_sha": _caption_key(row), "verdict": asdict(verdict)}
            handle.write(json.dumps(item) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    if failures:
        logger.warning("%d captions were not judged; rerun the report to retry them", failures)
    return verdicts
