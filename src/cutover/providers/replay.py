"""``replay``: serves recorded outputs instead of calling a model.

``replay:path/to/outputs.jsonl`` answers each request with the recorded line
whose ``id`` is the case id, else whose ``input`` hashes like the request's
messages. The recorded latency, time to first token, usage, cost and error
are returned as they were recorded; nothing sleeps. A case the file does not
cover is a permanent ``request_error`` on its Observation, so a partial
recording shows up as missing data rather than as a crash.
"""

from __future__ import annotations

from cutover.errors import ProviderRequestError
from cutover.recorded import RecordedOutputs, load_recorded
from cutover.records import ModelRequest, Observation
from cutover.targets import Target


class ReplayProvider:
    """Recorded outputs behind the Provider Protocol."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.recorded: RecordedOutputs = load_recorded(target.model)

    async def complete(self, request: ModelRequest) -> Observation:
        line = self.recorded.get(request.case_id, request.messages)
        if line is None:
            raise ProviderRequestError(
                f"{self.target.label}: no recorded output for case '{request.case_id}' "
                f"(matched by id, then by input hash) in {self.target.model}"
            )
        return line.observation(self.target.label)

    async def aclose(self) -> None:
        return None


__all__ = ["ReplayProvider"]
