"""``may_hold`` is a necessary condition: whenever it says no rule can hold, evaluate finds nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub.pipeline.alerts import AlertSettings, HouseholdSnapshot, evaluate, may_hold
from unit.test_alerts import HYPO, UNTIL, households


@HYPO
@given(households(), st.sampled_from([1, 2, 3]))
def test_no_finding_where_may_hold_says_none_can_hold(s: HouseholdSnapshot, min_fields: int) -> None:
    cfg = AlertSettings(multi_field_min_fields=min_fields)
    if not may_hold(s, cfg):
        assert evaluate(s, UNTIL, cfg) == {}

