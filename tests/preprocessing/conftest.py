"""Every loader test starts and ends with an empty cache at its default bound."""

import pytest

from pneumoclf.preprocessing import DEFAULT_CACHE_LIMIT, clear_cache, set_cache_limit


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    previous_limit = set_cache_limit(DEFAULT_CACHE_LIMIT)
    yield
    set_cache_limit(previous_limit)
    clear_cache()
