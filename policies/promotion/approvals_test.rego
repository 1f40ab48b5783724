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
	v.msg == "mallory may not approve prod; its approvers are: alice, bob, carol" # groups expanded, as everywhere
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
	v.msg == "prod needs 1 more approval(s) from bob, carol" # the gate's phrase: alice wrote the change
}

test_missing_approvals_name_only_who_may_still_approve if {
	two := object.union(gate("staging", "merge", ["bob"]), {"environment": {"approval": {"required": 3}}})
	some v in approvals.deny_missing_approvals with input as two with data.groups as groups
	v.msg == "staging needs 2 more approval(s) from alice, carol" # bob's approval counts already
}

test_allow_enough_approvals_at_merge if {
	count(approvals.deny_missing_approvals) == 0 with input as gate("prod", "merge", ["bob"]) with data.groups as groups
}

test_allow_no_approvals_before_the_pr if {
	count(approvals.deny_missing_approvals) == 0 with input as gate("prod", "pre_pr", []) with data.groups as groups
}

# the promoted range's people, as promoter reads them (bob committed a commit that claims alice wrote it)
ranged(env, phase, who) := object.union(gate(env, phase, who), {"promotion": object.union(
	object.union(f.promotion(env, phase), {"author": "Dana <dana@example.com>"}),
	{
		"authors": ["alice", "alice@example.com", "bob", "bob@example.com", "carol", "carol@example.com", "bobby42"],
		"authorship": {
			"alice": "authored 1a2b3c4", "alice@example.com": "authored 1a2b3c4",
			"bob": "committed 1a2b3c4", "bob@example.com": "committed 1a2b3c4",
			"carol": "authored 9f8e7d6", "carol@example.com": "authored 9f8e7d6",
			"bobby42": "authored or committed 1a2b3c4",
		},
		"authors_unknown": "",
	},
)})

test_deny_committer_of_a_forged_author_in_prod if {
	some v in approvals.deny_author_approval with input as ranged("prod", "approval", ["bob"]) with data.groups as groups
	v.msg == "bob committed 1a2b3c4 in the promoted range and may not approve it for prod"
}

test_deny_an_earlier_author_of_the_range if {
	some v in approvals.deny_author_approval with input as ranged("prod", "approval", ["Carol"]) with data.groups as groups
	v.msg == "Carol authored 9f8e7d6 in the promoted range and may not approve it for prod"
}

test_deny_a_forge_login_of_the_range if {
	some v in approvals.deny_author_approval with input as ranged("prod", "approval", ["BOBBY42"]) with data.groups as groups
	contains(v.msg, "BOBBY42 authored or committed 1a2b3c4 in the promoted range")
}

test_deny_the_promoted_commits_author_as_before if {
	some v in approvals.deny_author_approval with input as ranged("prod", "approval", ["dana"]) with data.groups as groups
	v.msg == "dana wrote commit 0123456 and may not approve it for prod"
}

test_allow_someone_outside_the_range if {
	count(approvals.deny_author_approval) == 0 with input as ranged("prod", "approval", ["sam"]) with data.groups as groups
	count(approvals.deny_unknown_authors) == 0 with input as ranged("prod", "approval", ["sam"]) with data.groups as groups
}

test_allow_range_authors_in_staging if {
	count(approvals.deny_author_approval) == 0 with input as ranged("staging", "approval", ["bob"]) with data.groups as groups
}

test_an_authors_approval_does_not_count_at_merge if {
	some v in approvals.deny_missing_approvals with input as ranged("prod", "merge", ["bob"]) with data.groups as groups
	v.details == {"have": 0, "need": 1}
}

# a range promoter could not read whole: bob authored nothing, yet no approval counts in prod
unknown(env, phase, who) := object.union(gate(env, phase, who), {"promotion": {
	"authors": [], "authorship": {},
	"authors_unknown": "the promoted range holds more than 10,000 commits that touched its folders",
}})

test_deny_every_approval_when_the_authors_are_unknown if {
	some v in approvals.deny_unknown_authors with input as unknown("prod", "approval", ["bob"]) with data.groups as groups
	v.msg == "bob may not approve prod: the authors of the promoted range are not known (the promoted range holds more than 10,000 commits that touched its folders)"
	count(approvals.deny_author_approval) == 0 with input as unknown("prod", "approval", ["bob"]) with data.groups as groups
}

test_unknown_authors_leave_no_valid_approval_at_merge if {
	some v in approvals.deny_missing_approvals with input as unknown("prod", "merge", ["bob"]) with data.groups as groups
	v.details == {"have": 0, "need": 1}
}

test_unknown_authors_do_not_matter_in_staging if {
	count(approvals.deny_unknown_authors) == 0 with input as unknown("staging", "approval", ["bob"]) with data.groups as groups
	count(approvals.deny_missing_approvals) == 0 with input as unknown("staging", "merge", ["bob"]) with data.groups as groups
}
