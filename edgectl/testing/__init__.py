"""What a provider plugin's tests need: loopback fake servers, a world of its own for each test, and the conformance suite.

    from edgectl.testing import Answer, FakeAPI, FaultProxy, Seen, Unanswered
    from edgectl.testing import invoke, isolate          # edgectl run in-process, in a test's own world
    from edgectl.testing.conformance import PurgeConformance, AnalyticsConformance

Nothing here is imported by edgectl's commands; pytest is needed only by `edgectl.testing.conformance`.
"""

from edgectl.testing.environment import Result, invoke, isolate
from edgectl.testing.loopback import Answer, FakeAPI, FaultProxy, Seen, Unanswered

__all__ = ["Answer", "FakeAPI", "FaultProxy", "Result", "Seen", "Unanswered", "invoke", "isolate"]
