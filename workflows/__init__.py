"""Temporal workflows: deterministic orchestration only, no I/O."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

# The sandbox every worker and replayer runs the workflows in. `cryptography` (the signed approvals'
# verification, promoter.signing) is passed through: its Rust core imports Python modules while it
# runs, which the sandbox would import again, and a native extension cannot be loaded twice.
RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography"))
