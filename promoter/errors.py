"""One user-facing error type, and named errors that say whether retrying can help.

The CLI prints a `PromoterError` as one line and exits 2; activities turn a `PermanentError` into a
non-retryable `ApplicationError` of the same type name, and let everything else retry.
"""

# the type of the activity error of a merge asked after its policy decision stood (`MergePullRequest.not_after`):
# the workflow asks the policies again and merges only if they still allow it
DECISION_EXPIRED = "DecisionExpired"

# What no broad handler on a check's way may turn into an answer (a denial, a finding, "not loaded"): each
# such `except Exception` re-raises these first, read as `errors.PASS_THROUGH` when the exception is
# matched. `promoter worker` sets the SDK's cancel of an activity, itself an Exception, which the request
# guards make land in the middle of error handling: a cancelled check ends cancelled. Empty elsewhere
# (the CLI's own checks stay fail-closed on anything).
PASS_THROUGH: tuple[type[BaseException], ...] = ()


class PromoterError(Exception):
    """Something a person got wrong (input, configuration). The message says what to fix."""


class PermanentError(PromoterError):
    """Retrying will not help."""


class BadInput(PermanentError):
    pass


class NotFound(PermanentError):
    pass


class Conflict(PermanentError):
    pass


class TemporaryError(Exception):
    """Retrying later may help (a remote that is down, a push race lost too often)."""


class ConnectionLost(Exception):
    """Temporal could not be reached for a while as a promotion was followed: its outcome is unknown.
    (Here, not in `promotions`, so that the CLI can name it without importing the models.)"""
