#!/usr/bin/env bash
# The hand-written deploy loop pgship replaces, done carefully: ON_ERROR_STOP,
# each file and its tracking row in one transaction (psql -1 with -f then -c),
# versions already recorded are skipped (read once, looked up in a bash array,
# so the loop starts one psql per pending file and nothing else).
# Usage: PSQL=/path/to/psql PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... psql_loop.sh DIR
set -euo pipefail
dir=$1
run_psql() { "$PSQL" -X -q -v ON_ERROR_STOP=1 "$@"; }

run_psql -c "CREATE TABLE IF NOT EXISTS schema_migrations (version text PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
declare -A applied=()
while IFS= read -r version; do
  [[ -n $version ]] && applied[$version]=1
done < <(run_psql -tA -c "SELECT version FROM schema_migrations")

for file in "$dir"/*.sql; do
  base=${file##*/}
  base=${base%.sql}
  version=${base%%_*}
  name=${base#*_}
  [[ -n ${applied[$version]:-} ]] && continue
  run_psql -1 -f "$file" -c "INSERT INTO schema_migrations (version, name) VALUES ('$version', '$name')"
done
