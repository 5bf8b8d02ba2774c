"""Label and name syntax, following Kubernetes' rules so labels survive the trip to Kueue."""

from __future__ import annotations

import functools
import re

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Always `fullmatch`, never `match`: `$` also matches before a trailing newline, which would let
# "default\n" pass as a queue name or label and fail later in Kubernetes.


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key, or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.fullmatch(prefix)):
        return f"label key {key!r}: the prefix must be a DNS subdomain (lowercase, at most 253 characters)"
    if not _NAME.fullmatch(name):
        return (
            f"label key {key!r}: the name must be 1-63 characters of [A-Za-z0-9-_.], "
            "starting and ending with an alphanumeric"
        )
    return None


def label_value_problem(value: str) -> str | None:
    if not _VALUE.fullmatch(value):
        return (
            f"label value {value!r}: at most 63 characters of [A-Za-z0-9-_.], "
            "starting and ending with an alphanumeric (or empty)"
        )
    return None


def queue_name_problem(name: str) -> str | None:
    """Queue names are DNS labels (they are LocalQueue names in kueue mode)."""
    if len(name) > 63:  # never cached: a hostile client's megabyte names must not pile up
        return _not_a_queue_name(name)
    return _short_queue_name_problem(name)


@functools.lru_cache(maxsize=1024)  # a farm has a few queues, named in every submit
def _short_queue_name_problem(name: str) -> str | None:
    return None if _DNS_LABEL.fullmatch(name) else _not_a_queue_name(name)


def _not_a_queue_name(name: str) -> str:
    # at most 80 characters of it: the error must not echo a megabyte name back
    return (
        f"{name[:80]!r} is not a valid queue name (a DNS label: 1-63 of [a-z0-9-], alphanumeric at both ends)"
    )
