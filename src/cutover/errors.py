"""The one exception tree of cutover.

::

    CutoverError                     anything cutover raises on purpose
    ├── InputError                   bad input from the user: exit code 2
    │   ├── TargetSpecError          a target string or target entry is invalid
    │   ├── SuiteError               a suite file is malformed (file, line, field)
    │   ├── RecordedOutputsError     a recorded-outputs JSONL file is malformed
    │   ├── GatewayConfigError       a gateway config file is invalid (file, line, field)
    │   ├── MissingKeyError          a provider key is not in the environment
    │   ├── CorpusError              a corpus, queries, qrels, changes or priority
    │   │                            file is malformed (file, line, field)
    │   ├── EmbeddingModelError      an embedding model spec is invalid, or its
    │   │                            extra is not installed
    │   ├── VectorIndexError         an index or alias operation is refused: unknown
    │   │                            name, wrong dimensions or model, still in use
    │   ├── PlanError                a rollout plan file is invalid (file, line, field)
    │   └── ScenarioError            a rollout simulation scenario is invalid
    │                                (file, line, field)
    ├── StoreError                   the database cannot be opened or migrated
    ├── RunAbortedError              a run stopped early (unreachable target,
    │   │                            rejected key, Ctrl-C); what was recorded stays
    │   └── BuildAbortedError        an embedding build stopped (the model failed
    │                                for good); committed batches stay
    └── ProviderError                one call to a model failed
        ├── PermanentProviderError   retrying will not help
        │   ├── ProviderAuthError        401/403
        │   └── ProviderRequestError     400/404/422: the request is wrong
        └── TransientProviderError   retried with backoff
            ├── RateLimitedError         429 (carries Retry-After)
            ├── ProviderServerError      5xx
            ├── ProviderTimeoutError     no answer (or no next chunk) in time
            ├── ProviderConnectionError  refused, reset, DNS
            └── MalformedResponseError   not the wire format (garbage, half a stream)

Provider errors never escape a run: the runner records them on the
Observation (``error`` and ``error_class``) so the error rate is a measured
figure. ``InputError`` subclasses carry where the problem is (``path``,
``line``, ``field``) and what would be valid, so the CLI can print one clear
line and exit 2.
"""

from __future__ import annotations


class CutoverError(Exception):
    """Base of every error cutover raises on purpose."""


class InputError(CutoverError):
    """Bad input: a file, a line, a field, and what would be valid."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        field = f"field '{self.field}': " if self.field else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{field}{self.message}{hint}"


class TargetSpecError(InputError):
    """A target such as ``openai:gpt-4o-mini@http://host/v1`` is invalid."""


class SuiteError(InputError):
    """A suite file is malformed."""


class RecordedOutputsError(InputError):
    """A recorded-outputs JSONL file is malformed."""


class GatewayConfigError(InputError):
    """A gateway config file (``gateway.yaml``) is invalid."""


class MissingKeyError(InputError):
    """A provider needs an API key that the environment does not hold."""


class CorpusError(InputError):
    """A corpus, queries, qrels, changes or priority file is malformed."""


class EmbeddingModelError(InputError):
    """An embedding model spec is invalid, or the extra it needs is not installed."""


class VectorIndexError(InputError):
    """An embedding index or alias operation is refused.

    The index or alias does not exist, the vectors do not fit the index
    (dimensions, model), or the index is still in use (behind an alias, or
    within its keep-warm period).
    """


class PlanError(InputError):
    """A rollout plan (``plan.yaml``) is invalid."""


class ScenarioError(InputError):
    """A rollout simulation scenario (``scenario.yaml``) is invalid."""


class StoreError(CutoverError):
    """The store cannot be opened, migrated or written."""


class RunAbortedError(CutoverError):
    """A run stopped before the end; everything recorded so far is kept.

    Running the same command again resumes it.
    """

    def __init__(self, message: str, *, run_id: str, recorded: int) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.recorded = recorded


class BuildAbortedError(RunAbortedError):
    """An embedding build stopped before the end (the model failed for good).

    ``run_id`` is the index name, ``recorded`` the documents committed by this
    run; every committed batch stays and the same command resumes.
    """


class ProviderError(CutoverError):
    """One call to a model failed.

    ``error_class`` is the short stable name recorded on the Observation.
    """

    error_class = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        partial_output: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.partial_output = partial_output


class PermanentProviderError(ProviderError):
    """Retrying will not help."""

    error_class = "request_error"


class ProviderAuthError(PermanentProviderError):
    error_class = "auth_error"


class ProviderRequestError(PermanentProviderError):
    error_class = "request_error"


class TransientProviderError(ProviderError):
    """Retried with backoff."""

    error_class = "transient_error"
    retryable = True


class RateLimitedError(TransientProviderError):
    error_class = "rate_limited"


class ProviderServerError(TransientProviderError):
    error_class = "server_error"


class ProviderTimeoutError(TransientProviderError):
    error_class = "timeout"


class ProviderConnectionError(TransientProviderError):
    error_class = "connection_error"


class MalformedResponseError(TransientProviderError):
    error_class = "malformed_response"


__all__ = [
    "BuildAbortedError",
    "CorpusError",
    "CutoverError",
    "EmbeddingModelError",
    "GatewayConfigError",
    "InputError",
    "MalformedResponseError",
    "MissingKeyError",
    "PermanentProviderError",
    "PlanError",
    "ProviderAuthError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderServerError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "RecordedOutputsError",
    "RunAbortedError",
    "ScenarioError",
    "StoreError",
    "SuiteError",
    "TargetSpecError",
    "TransientProviderError",
    "VectorIndexError",
]
