"""The bench's own accounting: every event counted once on both legs, the ratio from the counted rates."""

from __future__ import annotations

from types import SimpleNamespace

from hub.bench.pipeline import count_new, pipeline_bench, synthetic_events
from hub.settings import Settings


def test_count_new_counts_every_record_of_every_partition() -> None:
    """A getmany batch over several partitions is counted record by record, and a redelivered id is a duplicate."""
    events = synthetic_events(5)
    rec = [SimpleNamespace(value=ev.to_json_bytes()) for ev in events]
    seen: dict[str, float] = {}
    assert count_new({0: rec[:2], 1: rec[2:3], 2: rec[3:]}, seen, 1.0) == (5, 0)
    assert count_new({4: [rec[1]]}, seen, 2.0) == (1, 1)
    assert set(seen) == {ev.id for ev in events} and seen[events[1].id] == 1.0


def test_small_bench_accounts_for_every_event() -> None:
    """On a small N, each leg saw exactly the N events, every pipeline event reached the team, the ratio follows."""
    result = pipeline_bench(Settings(partitions=3), 30, hubs=1, latency_events=10, rate=50.0)
    assert result["passthrough_records"] == 30
    assert result["pipeline_team_events"] == 30 and result["team_duplicates"] == 0
    assert result["latency_events"] == 10
    assert abs(result["ratio"] - result["pipeline_events_per_s"] / result["passthrough_events_per_s"]) < 1e-3
    assert (result["database"], result["hubs"]) == ("sqlite", 1)
    assert 0 < result["consent_share"] < 1 and result["peak_rss_mb"] > 0


def test_stage_bench_counts_every_event_of_both_stages() -> None:
    """In process, every case passes intake and reaches the team; with the registry leg the cases link to residents."""
    from hub.bench.stages import stage_bench

    result = stage_bench(20, batch=8, registry=True)
    assert result["resolved"] == 20 and result["team_events"] == 20
    assert result["intake_events_per_s"] > 0 and result["registry_intake_events_per_s"] > 0
