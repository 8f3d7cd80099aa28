"""cache warm's bookkeeping that needs no network: repeats across the in-memory limit, and the ETA."""

from __future__ import annotations

from edgectl.cache.engine import Progress
from edgectl.cache.warm import Source, _Seen, unique


def test_repeats_are_skipped_on_both_sides_of_the_move_to_disk():
    seen = _Seen(in_memory=10)
    urls = [f"https://www.example.com/p{i}" for i in range(25)]
    assert [seen.add(u) for u in urls] == [True] * 25
    assert seen.keys is None and seen.db is not None  # past 10, kept in the temporary table
    assert not any(seen.add(u) for u in urls[:3] + urls[-3:])
    seen.close()
    warnings = []
    kept = [s.url for s in unique((Source(u) for u in urls + urls[::2]), warnings.append)]
    assert kept == urls and warnings == ["13 repeat(s) of a URL already listed were skipped"]


def test_the_eta_comes_from_the_total_once_known_and_from_the_file_read_before():
    from edgectl.cli.cache import _progress

    progress = Progress(done=100)
    progress.started -= 10  # 100 done in 10 s: 10/s
    reading = _progress(None, read=lambda: 0.25)
    assert reading.eta(progress) == ", ETA ~30s"  # a quarter of the file in 10 s
    progress.total = 700
    assert reading.eta(progress) == ", ETA 1m"  # 600 left at 10/s
    assert _progress(None).eta(Progress(done=5)) == ""  # a sitemap, not yet read to its end
