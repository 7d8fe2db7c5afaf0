#!/usr/bin/env bash
# Check deploy/schoolbot.service with systemd-analyze (Debian package: systemd).
#
#   deploy/verify.sh     # exit 0: the unit is valid and hardened; 1: it is not; 3: no systemd-analyze
#
# `systemd-analyze verify` insists that ExecStart's program exists, and /opt/schoolbot/venv is not here:
# it checks a copy of the unit whose ExecStart is this checkout's .venv/bin/schoolbot (or SCHOOLBOT_BIN;
# any executable when neither exists), the rest unchanged. It only warns about unknown keys or bad values
# and still exits 0, so any line it prints about the unit fails the check. Then
# `systemd-analyze security --offline` rates the sandboxing: above EXPOSURE_MAX (of 10) fails.
set -euo pipefail
here="$(cd "${0%/*}" && pwd)"  # (no dirname: the check for systemd-analyze comes before any program)
unit="${UNIT:-$here/schoolbot.service}"  # UNIT=…: another unit file (the tests check broken ones)
exposure_max="${EXPOSURE_MAX:-2.5}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "deploy/verify.sh: systemd-analyze is missing: install Debian's 'systemd' package" \
    "(apt-get install -y --no-install-recommends systemd)" >&2
  exit 3
fi

installed="/opt/schoolbot/venv/bin/schoolbot"
program="${SCHOOLBOT_BIN:-$here/../.venv/bin/schoolbot}"
if [[ ! -x "$program" ]]; then
  program="$(command -v true)"
fi
if [[ "$(grep -c "^ExecStart=$installed " "$unit")" != 1 ]]; then
  echo "deploy/verify.sh: $unit must have one 'ExecStart=$installed …' line (docs/operations.md installs there)" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
copy="$work/schoolbot.service"
sed "s|^ExecStart=$installed |ExecStart=$program |" "$unit" >"$copy"

status=0
output="$(systemd-analyze verify "$copy" 2>&1)" || status=$?
# Lines about other units of this machine are not ours to fix; every line about ours is.
ours="$(grep -F "schoolbot.service" <<<"$output" || true)"
if ((status != 0)) || [[ -n "$ours" ]]; then
  echo "deploy/verify.sh: systemd-analyze verify found problems in $unit:" >&2
  echo "${ours:-$output}" | sed "s|$work/schoolbot.service|$unit|g" >&2
  exit 1
fi

threshold="$(awk -v x="$exposure_max" 'BEGIN { printf "%d", x * 10 }')"
security="$(systemd-analyze security --offline=yes --threshold="$threshold" "$copy" 2>&1)" || {
  echo "$security" | grep -E "^(✗|→)" >&2 || echo "$security" >&2
  echo "deploy/verify.sh: the unit's sandboxing is weaker than EXPOSURE_MAX=$exposure_max" >&2
  exit 1
}
echo "deploy/verify.sh: $unit is valid ($(systemd-analyze --version | head -n1));" \
  "$(grep -F "Overall exposure level" <<<"$security" | sed 's/^→ //')"
