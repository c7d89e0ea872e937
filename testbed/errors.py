"""Typed errors. Each class carries its SPEC §5 exit code and the hint the CLI prints with it (what to do next);
messages are one line and name the field or file. Engines translate their own failures into these classes by
type or error code, so one mistake gives one exit code whichever engine ran the query."""


class TestbedError(Exception):
    """Base class. `exit_code` is what the CLI returns; `hint` what it suggests doing next."""

    exit_code = 4
    hint = "rerun with `--debug` before the command for details"


class InputError(TestbedError):
    """Invalid manifest, lake, model file or argument (exit code 2)."""

    exit_code = 2
    hint = "check the arguments with `testbed COMMAND --help`"


class ManifestError(InputError):
    """The manifest breaks the schema or does not fit the lake."""

    hint = "fix that field, then check the manifest with `testbed validate MANIFEST`"


class ManifestFileError(InputError):
    """The manifest file itself cannot be read (missing, a folder, no permission)."""

    hint = "check the manifest's path: give the JSON or YAML manifest file to read"


class TimeWindowError(ManifestError):
    """The manifest's time window holds none of the lake's events."""

    hint = ("move time.start and time.end inside the lake's event dates, then check with "
            "`testbed validate MANIFEST --lake LAKE`")


class FeatureSetError(ManifestError):
    """A feature set file breaks its schema, does not fit the lake, or does not define a model's features."""

    hint = "fix that feature in the feature set file (schemas/feature-set.schema.json describes it)"


class LakeError(InputError):
    """The lake breaks the SPEC §2 contract."""

    hint = "fix the lake (README: 'The lake contract'), then check it with `testbed validate MANIFEST --lake LAKE`"


class ModelArtifactError(InputError):
    """A model file is missing, unreadable or fails its checksum."""

    hint = "check the model's uri and sha256 in the manifest (`sha256sum FILE` prints it)"


class RankingsFileError(InputError):
    """A rankings file (a model of kind rankings) is unreadable or breaks the lists' contract."""

    hint = ("fix the rankings file (README: 'Judging a model that is not LightGBM'), then put its new sha256 in "
            "the manifest")


class CandidatesTableError(InputError):
    """A candidates table (a model's `candidates`: its own retrieval stage's output) is unreadable or breaks the
    table's contract."""

    hint = ("fix the candidates table (README: 'A model's own candidate stage'), then put its new sha256 in the "
            "manifest")


class TrainingOverlapError(InputError):
    """A model was trained on events of the run's label window and the manifest makes that an error."""

    hint = ("retrain the model with `testbed train --cutoff C` where C plus --label-days is at most time.cutoff, "
            "move the run's time window after its training, or set evaluation.training_overlap to warn")


class QueryInputError(InputError):
    """The engine rejected a query for what it was given (a filter value that does not fit its column): DuckDB's
    conversion and binder errors, Athena's USER error category. The step that built the query names the field."""


class SettingsError(InputError):
    """An environment variable the settings read is invalid or missing."""

    hint = "check the TESTBED_* environment variables (README: 'Deploying to AWS')"


class CredentialsError(SettingsError):
    """AWS credentials are needed (an s3:// lake or record, a deployed run) and none were found."""

    hint = ("provide AWS credentials: set AWS_PROFILE (after `aws configure` or `aws sso login`) or "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")


class PiiKeyFileError(InputError):
    """The local PII masking key file (`<out>/.testbed/pii.key`) is not a key this runner wrote."""

    hint = ("restore the key file from a backup, or delete it to make a new key (masks then differ from earlier "
            "runs), or set TESTBED_PII_SECRET")


class StepError(TestbedError):
    """A pipeline step failed at run time (exit code 4)."""

    hint = "see the run's run.json and errors/ for the failing step; rerun with `--debug` for details"


class TransientError(StepError):
    """A retryable failure (throttling, a busy service); the workflow retries it with backoff."""

    hint = "a service was busy or throttled; run the same command again"


class ParityError(StepError):
    """Stream-built and batch-built features differ (the run's decision is ERROR)."""


class ReplayError(StepError):
    """The replay could not publish or read back every record of the slice."""


class RunFailedError(TestbedError):
    """A step raised an unexpected error; the run was recorded as ERROR (exit code 4)."""

    hint = ("the run is recorded as ERROR in its run.json; fix the cause and run again "
            "(`--debug` before the command shows tracebacks)")


class LocalWriteError(TestbedError):
    """A file of the local output folder could not be written (disk full, no permission); nothing half-written
    was left under its name."""

    hint = "free space or fix the permissions of the --out folder, then run the same command again"


class RunInProgressError(TestbedError):
    """Another execution holds this run's claim and has not finished: this execution changed nothing of it."""

    hint = "wait for that execution to finish (or follow it with a longer --timeout), then run the same command"


def _all_subclasses(cls: type[TestbedError]) -> list[type[TestbedError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


ERRORS_BY_NAME: dict[str, type[TestbedError]] = {c.__name__: c for c in _all_subclasses(TestbedError)}
