package promotion.approvals_test

import data.lib.fixtures_test as f
import data.promotion.approvals
import rego.v1

groups := {"release-managers": ["bob", "carol"]}

gate(env, phase, who) := {
	"environment": f.environment(env), "objects": [],
	"promotion": object.union(f.promotion(env, phase), {"author": "Alice Liddell <alice@example.com>"}),
	"approvals": [{"approver": a, "at": "2026-11-25T10:00:00Z", "via": "cli"} | some a in who],
}

test_deny_unlisted_approver if {
	some v in approvals.deny_unlisted_approver with input as gate("prod", "approval", ["mallory"]) with data.groups as groups
	v.details.approver == "mallory"
}

test_allow_approver_through_group if {
	count(approvals.deny_unlisted_approver) == 0 with input as gate("prod", "approval", ["carol"]) with data.groups as groups
}

test_deny_author_approving_prod if {
	some v in approvals.deny_author_approval with input as gate("prod", "approval", ["alice"]) with data.groups as groups
	contains(v.msg, "alice wrote commit 0123456")
}

test_allow_author_approving_staging if {
	count(approvals.deny_author_approval) == 0 with input as gate("staging", "approval", ["alice"]) with data.groups as groups
}

test_deny_duplicate_approval if {
	count(approvals.deny_duplicate_approval) == 1 with input as gate("prod", "approval", ["bob", "bob"]) with data.groups as groups
}

test_deny_missing_approvals_at_merge if {
	some v in approvals.deny_missing_approvals with input as gate("prod", "merge", ["alice"]) with data.groups as groups
	v.details == {"have": 0, "need": 1}
}

test_allow_enough_approvals_at_merge if {
	count(approvals.deny_missing_approvals) == 0 with input as gate("prod", "merge", ["bob"]) with data.groups as groups
}

test_allow_no_approvals_before_the_pr if {
	count(approvals.deny_missing_approvals) == 0 with input as gate("prod", "pre_pr", []) with data.groups as groups
}
