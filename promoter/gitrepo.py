"""The Git adapter's names as its callers have always imported them; the adapter itself is the
package `promoter.git`, cut by concern (plumbing, the trusted rules, reading main, a stage's change,
writing to main: see its docstring). Kept so that no caller has to change with the split.
"""

from __future__ import annotations

from promoter.git.change import MAX_PATCH_CHARS
from promoter.git.clone import GIT_USERS, auth_env
from promoter.git.facade import GitClone
from promoter.git.objects import FORBIDDEN_NAMES, GITLINK, MAIN, SYMLINK, TREE, Entry, refuse_entry
from promoter.git.ports import (
    GitRepository,
    MainWriting,
    ProvenanceReading,
    RepositoryReading,
    RulesReading,
    StageChanges,
)
from promoter.git.provenance import MAX_AUTHOR_COMMITS, Authorship, HistoryEvent, Touch
from promoter.git.rules import MAX_TRUST_BYTES, PROMOTER_PRINCIPAL, RULE_PATHS
from promoter.git.writing import PUSH_ATTEMPTS

__all__ = [
    "FORBIDDEN_NAMES",
    "GITLINK",
    "GIT_USERS",
    "MAIN",
    "MAX_AUTHOR_COMMITS",
    "MAX_PATCH_CHARS",
    "MAX_TRUST_BYTES",
    "PROMOTER_PRINCIPAL",
    "PUSH_ATTEMPTS",
    "RULE_PATHS",
    "SYMLINK",
    "TREE",
    "Authorship",
    "Entry",
    "GitClone",
    "GitRepository",
    "HistoryEvent",
    "MainWriting",
    "ProvenanceReading",
    "RepositoryReading",
    "RulesReading",
    "StageChanges",
    "Touch",
    "auth_env",
    "refuse_entry",
]
