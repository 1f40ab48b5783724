# OPA's authorization policy in docker-compose.yml (`opa run --authentication=token
# --authorization=basic`): every request to OPA's API, a read as well as a write, must carry the bearer
# token the worker is given (PROMOTER_OPA_TOKEN_FILE). Without it a client could list the modules, so
# learn each worker's namespace, and put a module into one, which OPA would merge into that revision's
# decisions (docs/policies.md, "OPA sees what the audit names").
#
# The token is made once by the opa-token service and loaded as data.system.promoter.token.
package system.authz

import rego.v1

default allow := false

allow if {
	token := data.system.promoter.token
	is_string(token)
	count(token) >= 32 # never an empty or a short, guessable token
	input.identity == token
}
