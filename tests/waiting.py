"""The one way tests wait: poll observable state until a condition holds, or fail saying what was seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(read: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 30, what: str = "condition",
             interval: float = 0.05, ignore: tuple[type[Exception], ...] = (Exception,)) -> T:
    """Call ``read`` until ``done(value)``; return that value. AssertionError with the last value after
    ``timeout`` seconds. An exception of a type in ``ignore`` (a server not up yet) counts as not done;
    any other stops the wait at once."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = read()
            if done(last):  # type: ignore[arg-type]
                return last  # type: ignore[return-value]
        except ignore as exc:  # e.g. a refused connection while a peer starts
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last seen: {last!r}"[:2000])
        time.sleep(interval)
