"""Typed errors. Each maps to one SPEC §5 exit code; messages are one line and name the field or file."""


class TestbedError(Exception):
    """Base class. `exit_code` is what the CLI returns."""

    exit_code = 4


class InputError(TestbedError):
    """Invalid manifest, lake, model file or argument (exit code 2)."""

    exit_code = 2


class ManifestError(InputError):
    """The manifest breaks the schema or does not fit the lake."""


class LakeError(InputError):
    """The lake breaks the SPEC §2 contract."""


class ModelArtifactError(InputError):
    """A model file is missing, unreadable or fails its checksum."""


class StepError(TestbedError):
    """A pipeline step failed at run time (exit code 4)."""


class TransientError(StepError):
    """A retryable failure (throttling, a busy service); the workflow retries it with backoff."""


class ParityError(StepError):
    """Stream-built and batch-built features differ (the run's decision is ERROR)."""


class ReplayError(StepError):
    """The replay could not publish or read back every record of the slice."""


def _all_subclasses(cls: type[TestbedError]) -> list[type[TestbedError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


ERRORS_BY_NAME: dict[str, type[TestbedError]] = {c.__name__: c for c in _all_subclasses(TestbedError)}
