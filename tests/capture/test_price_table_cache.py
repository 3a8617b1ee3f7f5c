"""Price tables are built once per data directory, and a process that starts servers on many
data directories (the test suite does, thousands of times) keeps only a few of them: each is
about a megabyte, and they were kept for every directory ever seen."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from agentwatch.capture.cost import PriceTable


def test_one_table_per_data_directory_and_only_a_few_are_kept(tmp_path: Path) -> None:
    first = PriceTable.for_data_dir(str(tmp_path / "d0"))
    assert PriceTable.for_data_dir(str(tmp_path / "d0")) is first  # built once
    assert first.lookup("openai", "gpt-4o") is not None  # a real table, from the packaged bundle
    gone = weakref.ref(first)
    del first
    for i in range(1, 40):
        PriceTable.for_data_dir(str(tmp_path / f"d{i}"))
    gc.collect()
    assert gone() is None
