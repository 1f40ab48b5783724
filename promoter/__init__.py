"""promoter: a policy-gated GitOps promotion engine on Temporal."""

__version__ = "0.1.0"

TASK_QUEUE = "promoter"
MAX_FILE_BYTES = 5 * 1024 * 1024  # a file of an app folder larger than this is refused (PROMOTER_MAX_FILE_SIZE)
