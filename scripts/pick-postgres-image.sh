#!/usr/bin/env bash
# Print the PostgreSQL image the container backend should run, making sure it is on this machine.
#
#   PGSHIP_TEST_IMAGE=$(scripts/pick-postgres-image.sh) behave -D db=container
#
# PGSHIP_TEST_IMAGE (default postgres:16) when it is present or can be pulled; otherwise, as on
# machines with no registry, the offline pgship-local/postgres:15 (built if missing), saying so.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
wanted=${PGSHIP_TEST_IMAGE:-postgres:16}
offline=pgship-local/postgres:15

if docker image inspect "$wanted" >/dev/null 2>&1; then
    echo "$wanted"
    exit 0
fi
if pull_error=$(docker pull -q "$wanted" 2>&1 >/dev/null); then
    echo "$wanted"
    exit 0
fi
if [ "$wanted" != "$offline" ]; then
    printf 'pick-postgres-image: %s cannot be pulled (%s); using the offline %s instead\n' \
        "$wanted" "$(head -n1 <<<"$pull_error")" "$offline" >&2
fi
"$here/scripts/build-offline-postgres-image.sh"
echo "$offline"
