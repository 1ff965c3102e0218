"""Pages of one read, in order, one in memory at a time.

The end of a read is never guessed from a page's size (SF-01): a next link or a
cursor ends when the server gives none; offsets and page numbers end at the total
the server announced (``total_path``, ``total_pages_path``), which the read must
then reach, or else at the first empty page. A next link is resolved against the
page it came from (XA-05: relative or absolute), must stay on the first page's
origin (credentials go nowhere else) and must not repeat; a read stops after
``max_pages`` or past its deadline. Each of these raises ``ApiProblem``: a read
that ends early is never taken for a whole roster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import jmespath
from jmespath.parser import ParsedResult

from .config import (
    CursorPages,
    NextLinkPages,
    NoPages,
    OffsetPages,
    PageNumberPages,
    Pagination,
)
from .session import Answer, ApiProblem, ApiSession, UnexpectedAnswer

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass
class Request:
    """The first page's request; later pages derive from it."""

    method: str
    url: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Page:
    """One page's records (raw JSON objects) and the answer they came in."""

    number: int
    records: list[Any]
    answer: Answer


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, the default port spelled out (RFC 6454)."""
    parts = urlsplit(url)
    scheme = parts.scheme.casefold()
    return (
        scheme,
        (parts.hostname or "").casefold(),
        parts.port or _DEFAULT_PORTS.get(scheme),
    )


class Pager:
    """Fetches the pages of one read through ``api``."""

    def __init__(
        self,
        api: ApiSession,
        records: str,
        pagination: Pagination,
        *,
        max_pages: int,
        deadline: float,
    ) -> None:
        self.api = api
        self.records_path = records
        self.records: ParsedResult = jmespath.compile(records)
        self.pagination = pagination
        self.max_pages, self.deadline = max_pages, deadline
        self.pages_read = 0

    def pages(self, first: Request) -> Iterator[Page]:
        """Every page of the read that starts with ``first``, one in memory at a
        time: the next is fetched once the caller is done with this one. A
        problem found in a page's links is raised after its records.

        No thread fetches ahead: with one interpreter lock for both, the Python
        work of fetching and of reading records takes turns anyway, and handing
        pages between threads cost more than the wait it hid, measured against
        the benchmark's server and against one taking 2 ms a page alike.
        """
        planner = self._planner(first)
        request: Request | None = next(planner)
        while request is not None:
            page = self._fetch(request)
            request, failure = self._following(planner, page)
            yield page
            del page
            if failure is not None:
                raise failure

    @staticmethod
    def _following(
        planner: Generator[Request, Page, None], page: Page
    ) -> tuple[Request | None, ApiProblem | None]:
        try:
            return planner.send(page), None
        except StopIteration:
            return None, None
        except ApiProblem as error:
            return None, error

    def _planner(self, first: Request) -> Generator[Request, Page, None]:
        """The requests of the read, each sent the page the last one gave."""
        style = self.pagination
        if isinstance(style, NoPages):
            yield first
        elif isinstance(style, NextLinkPages):
            yield from self._next_links(first, style)
        elif isinstance(style, CursorPages):
            yield from self._cursors(first, style)
        elif isinstance(style, OffsetPages):
            yield from self._offsets(first, style)
        else:
            yield from self._numbers(first, style)

    # -- one page -------------------------------------------------------------------

    def _fetch(self, request: Request) -> Page:
        if self.pages_read >= self.max_pages:
            raise ApiProblem(
                f"more than max_pages ({self.max_pages}) pages; raise max_pages or"
                " check the pagination settings"
            )
        if self.pages_read and time.monotonic() > self.deadline:
            raise ApiProblem(
                f"the read's deadline passed after {self.pages_read} pages"
            )
        answer = self.api.fetch(
            request.method, request.url, request.params or None, request.body
        )
        self.pages_read += 1
        records = self.records.search(answer.body)
        if records is None:
            keys = (
                ", ".join(list(answer.body)[:8])
                if isinstance(answer.body, dict)
                else ""
            )
            raise UnexpectedAnswer(
                f"no records at {self.records_path!r} in the answer from"
                f" {self.api.shown(answer.url)} (its keys: {keys or 'none'})"
            )
        if not isinstance(records, list):
            raise UnexpectedAnswer(
                f"{self.records_path!r} is a {type(records).__name__}, not a list, in"
                f" the answer from {self.api.shown(answer.url)}"
            )
        logger.debug(
            "%s: page %d, %d records", self.api.connector, self.pages_read, len(records)
        )
        return Page(self.pages_read, records, answer)

    # -- styles ---------------------------------------------------------------------

    def _next_links(
        self, first: Request, style: NextLinkPages
    ) -> Generator[Request, Page, None]:
        home, seen = origin(first.url), set()
        request = first
        path = jmespath.compile(style.path) if style.path else None
        while True:
            page = yield request
            if path is not None:
                link = path.search(page.answer.body)
            else:
                link = page.answer.links.get("next", {}).get("url")
            if link is None or link == "":
                return
            if not isinstance(link, str):
                raise UnexpectedAnswer(
                    f"the next link at {style.path!r} is not text, on page"
                    f" {page.number}"
                )
            target = urljoin(page.answer.url, link)
            if origin(target) != home:
                raise UnexpectedAnswer(
                    f"page {page.number} links to another origin"
                    f" ({self.api.shown(target)}); credentials are not sent there"
                )
            if target in seen:
                raise ApiProblem(
                    f"page {page.number} links to a page already read"
                    f" ({self.api.shown(target)}); the server repeats itself"
                )
            seen.add(target)
            # The link carries the query (a skip token, say): no params again.
            request = Request(first.method, target, {}, first.body)

    def _cursors(
        self, first: Request, style: CursorPages
    ) -> Generator[Request, Page, None]:
        path, seen = jmespath.compile(style.path), set()
        request = first
        while True:
            page = yield request
            cursor = path.search(page.answer.body)
            if cursor is None or cursor == "":
                return
            if cursor in seen:
                raise ApiProblem(
                    f"page {page.number} gives a cursor already used; the server"
                    " repeats itself"
                )
            seen.add(cursor)
            request = Request(
                first.method,
                first.url,
                {**first.params, style.param: cursor},
                first.body,
            )

    def _offsets(
        self, first: Request, style: OffsetPages
    ) -> Generator[Request, Page, None]:
        total_path = jmespath.compile(style.total_path) if style.total_path else None
        offset, received = style.start, 0
        while True:
            params = {
                **first.params,
                style.offset_param: offset,
                style.limit_param: style.limit,
            }
            page = yield Request(first.method, first.url, params, first.body)
            count = len(page.records)
            offset, received = offset + count, received + count
            if total_path is None:
                if count == 0:
                    return
                continue
            total = _total(total_path.search(page.answer.body), style.total_path)
            if received >= total:
                return
            if count == 0:
                raise ApiProblem(
                    f"an empty page after {received} of the {total} records announced"
                )

    def _numbers(
        self, first: Request, style: PageNumberPages
    ) -> Generator[Request, Page, None]:
        pages_path = (
            jmespath.compile(style.total_pages_path) if style.total_pages_path else None
        )
        number = style.first
        while True:
            params = {**first.params, style.page_param: number}
            if style.size_param:
                params[style.size_param] = style.size
            page = yield Request(first.method, first.url, params, first.body)
            if pages_path is None:
                if not page.records:
                    return
            else:
                last = (
                    style.first
                    + _total(
                        pages_path.search(page.answer.body), style.total_pages_path
                    )
                    - 1
                )
                if number >= last:
                    return
                if not page.records:
                    raise ApiProblem(
                        f"page {number} is empty before the last page announced"
                        f" ({last})"
                    )
            number += 1


def _total(value: Any, path: str | None) -> int:
    """A total the server announced, as a number (``UnexpectedAnswer`` if none)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnexpectedAnswer(f"no total at {path!r} in the answer")
    try:
        return int(value)
    except ValueError:
        raise UnexpectedAnswer(f"the total at {path!r} is not a number") from None
