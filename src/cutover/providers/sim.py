"""``sim``: a seeded simulated model for demos, tests and rehearsals.

Everything it produces is marked ``simulated=True`` and its model name ends in
``(simulated)``. A profile sets a latency distribution (log-normal from a
median and a p95), time to first token, error and 429 rates, token prices and
output behaviours, each overridable per tag so that a scenario can make the
candidate worse on one slice only::

    name: fast-v2
    seed: 2
    latency: {median_ms: 300, p95_ms: 900}
    ttft: {median_ms: 90, p95_ms: 250}
    accuracy: 0.95        # P(answer == the case's expected output, when it has one)
    refuse: 0.01          # P(a refusal instead of an answer)
    fence: 0.0            # P(JSON wrapped in a ```json code fence)
    preamble: 0.0         # P("Sure! Here is ..." before the answer)
    truncate: 0.0         # P(output cut short, finish_reason "length")
    error_rate: 0.0       # P(HTTP 500) per attempt
    rate_limit_rate: 0.0  # P(HTTP 429 with Retry-After) per attempt
    price: {input_per_mtok: 0.15, output_per_mtok: 0.6}
    by_tag:
      billing: {accuracy: 0.7, fence: 0.4}

Built-in profiles live in ``cutover/scenarios/sim_models.yaml``
(``sim:baseline-v1``, ``sim:fast-v2``, ``sim:echo``); ``sim:path/to/profile.yaml``
loads a file. Draws are seeded by (profile seed, case id, repeat, attempt), so a
run gives the same outputs whatever the concurrency or order. ``time_scale``
(profile or target ``params``) scales the real sleep; 0 sleeps not at all and
the recorded latency is still the simulated one.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cutover.errors import ProviderServerError, RateLimitedError, TargetSpecError
from cutover.pricing import cost_usd
from cutover.records import ModelRequest, Observation, ToolCall
from cutover.targets import Price, Target

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
PREAMBLE_TEXT = "Sure! Here is the answer you asked for:\n\n"


class LatencyDist(BaseModel):
    """Log-normal latency given by its median and 95th percentile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median_ms: float = Field(gt=0)
    p95_ms: float = Field(gt=0)

    def sample(self, rng: random.Random) -> float:
        sigma = max(0.0, math.log(max(self.p95_ms, self.median_ms) / self.median_ms) / 1.6449)
        return math.exp(rng.gauss(math.log(self.median_ms), sigma))


class Behaviour(BaseModel):
    """The knobs that may differ per tag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    latency: LatencyDist = LatencyDist(median_ms=400, p95_ms=1200)
    ttft: LatencyDist = LatencyDist(median_ms=120, p95_ms=350)
    accuracy: float = Field(default=0.95, ge=0, le=1)
    refuse: float = Field(default=0.0, ge=0, le=1)
    fence: float = Field(default=0.0, ge=0, le=1)
    preamble: float = Field(default=0.0, ge=0, le=1)
    truncate: float = Field(default=0.0, ge=0, le=1)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    verbosity: float = Field(default=1.0, gt=0)


class SimProfile(Behaviour):
    """A simulated model: base behaviour, per-tag overrides, price, seed."""

    name: str
    description: str = ""
    seed: int = 0
    time_scale: float = Field(default=1.0, ge=0)
    price: Price = Price(input_per_mtok=0.5, output_per_mtok=1.5)
    by_tag: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def behaviour_for(self, tags: Mapping[str, str]) -> Behaviour:
        """Base behaviour with every matching ``by_tag`` override applied.

        A ``by_tag`` key matches a case tag ``k: v`` when it is ``v``, ``k`` or ``k=v``.
        """
        merged: dict[str, Any] = {}
        for key, override in self.by_tag.items():
            if any(key in (v, k, f"{k}={v}") for k, v in tags.items()):
                merged.update(override)
        if not merged:
            return self
        base = {name: getattr(self, name) for name in Behaviour.model_fields}
        return Behaviour.model_validate({**base, **merged})


def builtin_profiles() -> dict[str, SimProfile]:
    """The profiles shipped with cutover."""
    text = resources.files("cutover.scenarios").joinpath("sim_models.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return {name: SimProfile.model_validate({"name": name, **spec}) for name, spec in data.items()}


def load_profile(model: str) -> SimProfile:
    """``model`` is a built-in profile name or a path to a profile YAML file."""
    if model.endswith((".yaml", ".yml")):
        path = Path(model)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise TargetSpecError(f"cannot read sim profile: {exc}", path=str(path)) from None
        if not isinstance(data, dict):
            raise TargetSpecError("a sim profile must be a mapping", path=str(path))
        data.setdefault("name", path.stem)
        try:
            profile = SimProfile.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise TargetSpecError(
                first["msg"], path=str(path), field=".".join(str(p) for p in first["loc"])
            ) from None
        for tag, override in profile.by_tag.items():
            try:
                Behaviour.model_validate(override)
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise TargetSpecError(
                    first["msg"], path=str(path), field=f"by_tag.{tag}.{loc}"
                ) from None
        return profile
    profiles = builtin_profiles()
    if model not in profiles:
        raise TargetSpecError(
            f"unknown simulated model 'sim:{model}'",
            hint=f"built-in: {', '.join(sorted(profiles))}; or sim:path/to/profile.yaml",
        )
    return profiles[model]


def _seeded_rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _last_user_text(request: ModelRequest) -> str:
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _looks_json(text: str) -> bool:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return False
    try:
        orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return False
    return True


def _wrong_answer(expected: str, rng: random.Random) -> str:
    if _looks_json(expected):
        data = orjson.loads(expected)
        if isinstance(data, dict) and data:
            key = rng.choice(sorted(data))
            data[key] = "unknown" if not isinstance(data[key], str) else data[key][::-1]
            return orjson.dumps(data).decode()
        return "[]"
    words = expected.split()
    rng.shuffle(words)
    return "I am not certain, but possibly: " + " ".join(words[: max(1, len(words) // 2)])


def _made_up_answer(prompt: str, profile: SimProfile, verbosity: float) -> str:
    topic = " ".join(prompt.split()[:12]) or "your request"
    sentences = max(1, round(2 * verbosity))
    body = " ".join(f"Point {i + 1} about {topic.lower().rstrip('?.!')}." for i in range(sentences))
    return f"[simulated by {profile.name}] {body}"


class SimProvider:
    """The simulated model behind ``sim:NAME`` targets."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.profile = load_profile(target.model)
        params = target.params
        self.time_scale = float(params.get("time_scale", self.profile.time_scale))
        self.seed = int(params.get("seed", self.profile.seed))
        self._attempts: dict[tuple[str | None, int], int] = {}

    async def complete(self, request: ModelRequest) -> Observation:
        slot = (request.case_id, request.repeat)
        attempt = self._attempts.get(slot, 0)
        self._attempts[slot] = attempt + 1
        key = request.case_id or orjson.dumps(request.messages).decode()
        behaviour = self.profile.behaviour_for(request.tags)
        rng = _seeded_rng(self.seed, self.profile.name, key, request.repeat, attempt)
        latency = behaviour.latency.sample(rng)
        ttft = min(latency, behaviour.ttft.sample(rng))
        fault = rng.random()
        if fault < behaviour.rate_limit_rate:
            await self._sleep(min(latency, 50.0))
            raise RateLimitedError(
                f"{self.target.label}: simulated 429 rate limit",
                status_code=429,
                retry_after_s=0.05,
            )
        if fault < behaviour.rate_limit_rate + behaviour.error_rate:
            await self._sleep(latency / 2)
            raise ProviderServerError(f"{self.target.label}: simulated 500 error", status_code=500)
        # Output draws use their own stream so faults on a retry do not change the answer.
        out_rng = _seeded_rng(self.seed, self.profile.name, key, request.repeat, "output")
        text, tool_calls, finish = self._output(request, behaviour, out_rng)
        await self._sleep(latency)
        input_chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        output_chars = len(text) + sum(len(tc.arguments) for tc in tool_calls)
        input_tokens, output_tokens = max(1, input_chars // 4), max(1, output_chars // 4)
        price = self.target.price or self.profile.price
        return Observation(
            target=self.target.label,
            output=text,
            tool_calls=tool_calls,
            finish_reason=finish,
            latency_ms=round(latency, 3),
            ttft_ms=round(ttft, 3),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd(price, input_tokens, output_tokens),
            model=f"sim:{self.profile.name} (simulated)",
            simulated=True,
        )

    def _output(
        self, request: ModelRequest, behaviour: Behaviour, rng: random.Random
    ) -> tuple[str, tuple[ToolCall, ...], str]:
        draws = [rng.random() for _ in range(5)]
        if draws[0] < behaviour.refuse:
            return REFUSAL_TEXT, (), "stop"
        expected = request.expected
        prompt = _last_user_text(request)
        if request.tools:
            return self._tool_call(request, prompt, expected)
        if expected is not None:
            text = expected if draws[1] < behaviour.accuracy else _wrong_answer(expected, rng)
        else:
            text = _made_up_answer(prompt, self.profile, behaviour.verbosity)
        wants_json = _looks_json(text) or bool(request.response_format)
        if wants_json and draws[2] < behaviour.fence:
            text = f"```json\n{text}\n```"
        if draws[3] < behaviour.preamble:
            text = PREAMBLE_TEXT + text
        if draws[4] < behaviour.truncate and len(text) > 8:
            return text[: int(len(text) * 0.6)], (), "length"
        return text, (), "stop"

    def _tool_call(
        self, request: ModelRequest, prompt: str, expected: str | None
    ) -> tuple[str, tuple[ToolCall, ...], str]:
        names = [str(t.get("function", {}).get("name", "")) for t in request.tools or ()]
        name = next((n for n in names if n and n in prompt), names[0] if names else "tool")
        arguments = expected if expected is not None and _looks_json(expected) else "{}"
        call_id = "call_" + hashlib.sha256(f"{request.case_id}{name}".encode()).hexdigest()[:12]
        return "", (ToolCall(id=call_id, name=name, arguments=arguments),), "tool_calls"

    async def _sleep(self, ms: float) -> None:
        if self.time_scale > 0:
            await asyncio.sleep(ms / 1000.0 * self.time_scale)

    async def aclose(self) -> None:
        return None


__all__ = [
    "Behaviour",
    "LatencyDist",
    "SimProfile",
    "SimProvider",
    "builtin_profiles",
    "load_profile",
]
