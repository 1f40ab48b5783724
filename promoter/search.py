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

APP = SearchAttributeKey.for_keyword(promotions.APP_ATTRIBUTE)
ENV = SearchAttributeKey.for_keyword(promotions.ENV_ATTRIBUTE)
COMMIT = SearchAttributeKey.for_keyword(promotions.COMMIT_ATTRIBUTE)
STATE = SearchAttributeKey.for_keyword(promotions.STATE_ATTRIBUTE)  # the stage's state while running, then the outcome
APPS = SearchAttributeKey.for_keyword_list(promotions.APPS_ATTRIBUTE)  # every app moved: `PromotionApps = 'api'`
BASE = (APP, ENV, COMMIT, STATE)  # what a promotion needs to be indexed; APPS is set too when registered
KEYS = (*BASE, APPS)
