"""What a provider plugin's tests need: loopback fake servers and the conformance suite every kind must pass.

    from edgectl.testing import Answer, FakeAPI, FaultProxy, Seen, Unanswered
    from edgectl.testing.conformance import PurgeConformance, AnalyticsConformance

Nothing here is imported by edgectl's commands; pytest is needed only by `edgectl.testing.conformance`.
"""

from edgectl.testing.loopback import Answer, FakeAPI, FaultProxy, Seen, Unanswered

__all__ = ["Answer", "FakeAPI", "FaultProxy", "Seen", "Unanswered"]
