"""The search attributes a promotion carries, so the Temporal Web UI lists and filters promotions
without reading JSON: `PromotionState="awaiting_approval"` lists every gate that waits.

`promoter up` registers them on its dev server; on a production namespace register them once with
`temporal operator search-attribute create --name PromotionApp --type Keyword` (and the three others),
and `--name PromotionApps --type KeywordList`, which lists every app a promotion moves (a release
set's members) and keeps a set and a single promotion of one of its apps from running at once.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

from promoter import promotions

# the keys, each written once: their names in `promotions.INDEXED` (which the HTTP client reads too,
# without importing the SDK), their types here
APP, ENV, COMMIT, STATE = (SearchAttributeKey.for_keyword(name) for name in promotions.INDEXED)
# STATE: the stage's state while running, then the outcome
APPS = SearchAttributeKey.for_keyword_list(promotions.APPS_ATTRIBUTE)  # every app moved: `PromotionApps = 'api'`
BASE = (
    APP,
    ENV,
    COMMIT,
    STATE,
)  # what a promotion needs to be indexed (and what a listing shows); APPS too when registered
KEYS = (*BASE, APPS)
