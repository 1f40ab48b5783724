# METADATA
# title: Dates and times
# description: >-
#   Strict readers for the dates, times and weekdays that policy data carries (exception expiries,
#   freeze windows). Each recogniser is true only for a well-formed value, so a rule can deny a bad
#   one by name instead of erroring on it or, worse, never matching it. promoter/policy/__init__.py
#   holds the same grammar for the checks it makes when it loads the data.
# custom:
#   severity: info
#   remediation: Not a rule; nothing to remediate.
package lib.dates

import rego.v1

day_ns := ((24 * 60) * 60) * 1000000000

weekdays := {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

# METADATA
# title: A calendar date
# description: YYYY-MM-DD naming a day that exists (2026-02-30 and 2026-13-01 do not).
# custom:
#   severity: info
#   remediation: Not a rule.
is_date(s) if {
	is_string(s)
	regex.match(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`, s)
	number(substring(s, 8, 2)) <= month_days(number(substring(s, 0, 4)), number(substring(s, 5, 2)))
}

# METADATA
# title: An RFC 3339 time
# description: A date, T, a time and an offset (2026-12-20T00:00:00Z, 2026-12-20T09:30:00.5+01:00); nothing else.
# custom:
#   severity: info
#   remediation: Not a rule.
is_rfc3339(s) if {
	is_string(s)
	regex.match(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`, s)
	is_date(substring(s, 0, 10))
}

# a date or an RFC 3339 time
is_time(s) if is_date(s)

is_time(s) if is_rfc3339(s)

# HH:MM, 00:00 to 23:59
is_hhmm(s) if {
	is_string(s)
	regex.match(`^([01][0-9]|2[0-3]):[0-5][0-9]$`, s)
}

# Monday to Sunday, in any case
is_weekday(s) if {
	is_string(s)
	lower(s) in weekdays
}

# nanoseconds since the epoch of a date (its first instant, UTC) or of an RFC 3339 time
ns(s) := time.parse_rfc3339_ns(sprintf("%sT00:00:00Z", [s])) if is_date(s)

ns(s) := time.parse_rfc3339_ns(s) if is_rfc3339(s)

# minutes since midnight of HH:MM
minutes(s) := (number(substring(s, 0, 2)) * 60) + number(substring(s, 3, 2))

month_days(_, m) := 31 if m in {1, 3, 5, 7, 8, 10, 12}

month_days(_, m) := 30 if m in {4, 6, 9, 11}

month_days(y, 2) := 29 if leap(y)

month_days(y, 2) := 28 if not leap(y)

leap(y) if {
	y % 4 == 0
	y % 100 != 0
}

leap(y) if y % 400 == 0

# "08" and "00" as numbers (leading zeros are not JSON numbers, which some engines insist on)
number(digits) := to_number(trim_left(digits, "0")) if trim_left(digits, "0") != ""

number(digits) := 0 if trim_left(digits, "0") == ""
