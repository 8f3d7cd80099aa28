"""cache warm's bookkeeping that needs no network: repeats across the in-memory limit, and the ETA."""

from __future__ import annotations

from edgectl.cache.engine import Progress
from edgectl.cache.sources import Source, _Seen, unique


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
    from edgectl.cache.warm import eta_seconds

    progress = Progress(done=100)
    progress.started -= 10  # 100 done in 10 s: 10/s
    left, estimated = eta_seconds(progress, 0.25)
    assert estimated and abs(left - 30) < 0.5  # a quarter of the file in 10 s
    progress.total = 700
    left, estimated = eta_seconds(progress, 0.25)
    assert not estimated and abs(left - 60) < 1  # 600 left at 10/s
    assert eta_seconds(Progress(done=5), None) is None  # a sitemap, not yet read to its end


def test_a_request_is_stored_and_read_back_as_the_same_request():
    import json

    from edgectl.cache.warm import EngineOptions, WarmRequest

    request = WarmRequest(urls=("https://www.example.com/",), sitemaps=("https://www.example.com/sitemap.xml",),
                          include=("/docs/*",), nodes=("n1", "n2"), headers=("X-Device: mobile",),
                          engine=EngineOptions(concurrency=8, rate=5.0), variants=("gzip",))
    stored = json.loads(json.dumps(request.to_record()))
    assert WarmRequest.from_record(stored) == request
    # a key written by another version is ignored rather than refused
    assert WarmRequest.from_record({**stored, "later_option": 1}) == request


def test_a_resumed_run_keeps_its_own_engine_options_unless_given_again():
    from edgectl.cache.warm import EngineOptions

    stored = {"concurrency": 8, "rate": 5.0, "timeout": "3s"}
    resumed = EngineOptions.merged({"concurrency": 32, "rate": None}, stored)
    assert (resumed.concurrency, resumed.rate, resumed.timeout, resumed.retries) == (32, 5.0, "3s", 2)
    assert EngineOptions.merged({}) == EngineOptions()
