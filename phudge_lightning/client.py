"""A Python client of ``phudge serve``, with the methods and return types of ``Judge``.

    from phudge_lightning.client import JudgeClient
    judge = JudgeClient("http://judge.example:8000", api_key="...")
    judge.grade("What is 2+2?", "4", reference_answer="2 + 2 = 4").score
    judge.compare("What is 2+2?", "4", "5").winner
    judge.rank("What is 2+2?", ["4", "5", "four"]).answers[0].index

``grade`` and ``grade_many`` return ``Grade``s, ``compare`` a ``Comparison``, ``rank`` and
``rank_many`` ``Ranking``s, as ``Judge``'s methods do on the same judge. Every request has a
timeout (``timeout`` seconds to connect and for each read). A 503 (the server's queue is full)
is retried up to ``retries`` times, waiting the server's ``Retry-After`` and at least
``backoff`` x 2^attempt seconds (capped at ``max_backoff``), with up to 25 % random jitter so
that clients refused together do not return together. Any other error answer raises
``ServerError`` with the server's one-line message.

It needs only the standard library: it imports neither torch nor transformers, whose classes
(``Comparison``, ``Ranking``) it loads only when ``compare`` or ``rank`` is called.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from typing import Iterable

from phudge_lightning.grades import GRADE_FIELDS, Grade

MAX_RECORDS = 64  # the server's limit of records in one /grade request (serve.limits.MAX_RECORDS)


class ServerError(Exception):
    """An error answer of the server: ``status`` and its one-line ``message``."""

    def __init__(self, status: int, message: str, request_id: str | None = None):
        super().__init__(f"HTTP {status}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status, self.message, self.request_id = status, message, request_id


def _grade(fields: dict) -> Grade:
    return Grade(**{k: fields[k] for k in GRADE_FIELDS if k in fields})


def _record(record) -> dict:
    raw = record if isinstance(record, dict) else record.to_dict()
    return {k: v for k, v in raw.items() if v is not None and k not in ("extra", "score", "feedback")}


class JudgeClient:
    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 120.0, retries: int = 8,
                 backoff: float = 0.5, max_backoff: float = 30.0):
        self.url, self.api_key = url.rstrip("/"), api_key
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff

    def __repr__(self) -> str:  # never the key
        return f"JudgeClient({self.url!r}, api_key={'...' if self.api_key else None})"

    # -- HTTP --------------------------------------------------------------------------------------
    def request(self, path: str, body=None):
        """The parsed JSON answer of ``POST path`` (``GET`` without a body), retrying 503s."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return json.loads(answer.read())
            except urllib.error.HTTPError as error:
                if error.code != 503 or attempt == self.retries:
                    raise self._error(error) from None
                time.sleep(self._wait(attempt, error.headers.get("Retry-After")))
                error.close()

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        try:
            asked = float(retry_after) if retry_after is not None else 0.0
        except ValueError:  # an HTTP date: not sent by phudge serve
            asked = 0.0
        return max(asked, min(self.max_backoff, self.backoff * 2**attempt)) * random.uniform(1.0, 1.25)

    @staticmethod
    def _error(error: urllib.error.HTTPError) -> ServerError:
        text = error.read()
        try:
            message = json.loads(text)["message"]
        except (ValueError, KeyError, TypeError):
            message = text.decode("utf-8", "replace")[:300] or error.reason
        return ServerError(error.code, message, error.headers.get("X-Request-ID"))

    def health(self) -> dict:
        return self.request("/health")

    # -- the Judge API -----------------------------------------------------------------------------
    def grade(self, instruction: str, response: str, rubric: str | dict | None = None,
              reference_answer: str | None = None, context: str | list[str] | None = None) -> Grade:
        raw = {"instruction": instruction, "response": response, "rubric": rubric,
               "reference_answer": reference_answer, "context": context}
        return _grade(self.request("/grade", {k: v for k, v in raw.items() if v is not None}))

    def grade_many(self, records: Iterable, batch_size: int | None = None) -> list[Grade]:
        """Grades in input order, sent ``batch_size`` records a request (at most, and by default, 64)."""
        size = min(batch_size or MAX_RECORDS, MAX_RECORDS)
        rows = [_record(r) for r in records]
        return [_grade(g) for start in range(0, len(rows), size) for g in self.request("/grade", rows[start:start + size])]

    def compare(self, instruction: str, response_a: str, response_b: str, rubric: str | dict | None = None,
                reference_answer: str | None = None, context: str | list[str] | None = None,
                tie_margin: float = 0.0):
        """A ``Comparison``: which response is better, each graded alone."""
        from phudge_lightning.judge import Comparison

        raw = {"instruction": instruction, "response_a": response_a, "response_b": response_b, "rubric": rubric,
               "reference_answer": reference_answer, "context": context, "tie_margin": float(tie_margin)}
        answer = self.request("/compare", {k: v for k, v in raw.items() if v is not None})
        return Comparison(**{k: answer.get(k) for k in ("winner", "score_a", "score_b", "margin", "p_a_better", "p_tie")})

    def rank(self, instruction: str, responses: list, rubric: str | dict | None = None,
             reference_answer: str | None = None, context: str | list[str] | None = None):
        """A ``Ranking``: the answers best first, each graded alone."""
        query = {"instruction": instruction, "responses": responses, "rubric": rubric,
                 "reference_answer": reference_answer, "context": context}
        return self.rank_many([query])[0]

    def rank_many(self, queries: Iterable[dict], batch_size: int | None = None) -> list:
        """A ``Ranking`` per query (a row to rank: ``instruction``, ``responses`` ...), one request each."""
        from phudge_lightning.rank.ranking import ANSWER_FIELDS, RankedAnswer, Ranking

        rankings = []
        for query in queries:
            answer = self.request("/rank", {k: v for k, v in query.items() if v is not None})
            answers = [RankedAnswer(a["index"], a["rank"], _grade(a), {k: v for k, v in a.items() if k not in ANSWER_FIELDS})
                       for a in answer["ranking"]]
            rankings.append(Ranking(answers, answer.get("p_better")))
        return rankings
