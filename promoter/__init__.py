"""promoter: a policy-gated GitOps promotion engine on Temporal."""

__version__ = "0.1.0"

TASK_QUEUE = "promoter"
