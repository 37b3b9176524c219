#!/bin/sh
# Run by the postgres image once, when the postgres-data volume is first initialised
# (mounted into /docker-entrypoint-initdb.d by compose.yaml): a read-only login for Grafana's
# database dashboard. Its password is GRAFANA_DB_PASSWORD from .env; changing .env later does
# not change the role (ALTER ROLE grafana PASSWORD '...', or remove the volume).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v password="$GRAFANA_DB_PASSWORD" <<'SQL'
CREATE ROLE grafana LOGIN PASSWORD :'password' IN ROLE pg_read_all_data;
SQL
