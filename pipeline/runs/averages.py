"""Rolling average cost of an agent's completed runs, for the run header's "vs avg" figure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# The average covers this many most recent completed runs of the agent.
AVERAGE_WINDOW_RUNS = 20


@dataclass
class AgentAverage:
    """Costs of an agent's most recent completed runs, oldest first."""

    agent: str
    costs: list[float] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)

    def add_completed_run(self, run_id: str, cost_usd: float) -> bool:
        """Add a run's final cost once; return False if that run was already counted."""
        if run_id in self.run_ids:
            return False
        self.run_ids.append(run_id)
        self.costs.append(cost_usd)
        del self.run_ids[:-AVERAGE_WINDOW_RUNS]
        del self.costs[:-AVERAGE_WINDOW_RUNS]
        return True

    def average(self, excluding_run_id: str | None = None) -> float | None:
        costs = [
            cost for run_id, cost in zip(self.run_ids, self.costs) if run_id != excluding_run_id
        ]
        return sum(costs) / len(costs) if costs else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AgentAverage":
        return cls(**data)


def compare_to_average(cost_usd: float, average_usd: float | None) -> float | None:
    """Return the run's cost relative to the average as a ratio (-0.18 is 18 % below)."""
    if average_usd is None or average_usd <= 0:
        return None
    return (cost_usd - average_usd) / average_usd
