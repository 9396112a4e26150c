"""The tracking tables other migration tools create, as their own DDL writes them.

For the tests and scenarios that check how pgship takes such a database over
(:mod:`pgship.adopt`): golang-migrate, dbmate, goose and Flyway, each table exactly
as that tool creates it on PostgreSQL.
"""

from __future__ import annotations

GOLANG_MIGRATE_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, "
    "dirty boolean not null)"
)
DBMATE_DDL = "create table if not exists schema_migrations (version varchar(128) primary key)"
GOOSE_DDL = (
    "CREATE TABLE goose_db_version (id serial NOT NULL, version_id bigint NOT NULL, "
    "is_applied boolean NOT NULL, tstamp timestamp NULL default now(), PRIMARY KEY(id))"
)
FLYWAY_DDL = (
    'CREATE TABLE "public"."flyway_schema_history" ("installed_rank" INT NOT NULL, "version" VARCHAR(50), '
    '"description" VARCHAR(200) NOT NULL, "type" VARCHAR(20) NOT NULL, "script" VARCHAR(1000) NOT NULL, '
    '"checksum" INTEGER, "installed_by" VARCHAR(100) NOT NULL, '
    '"installed_on" TIMESTAMP NOT NULL DEFAULT now(), "execution_time" INTEGER NOT NULL, '
    '"success" BOOLEAN NOT NULL); '
    'ALTER TABLE "public"."flyway_schema_history" ADD CONSTRAINT "flyway_schema_history_pk" '
    'PRIMARY KEY ("installed_rank"); '
    'CREATE INDEX "flyway_schema_history_s_idx" ON "public"."flyway_schema_history" ("success")'
)
