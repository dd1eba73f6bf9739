-- Once per PostgreSQL server, as a superuser: the roles and the database crm_pipeline needs.
--
--   psql -v database=crm -v owner=crm_owner -v owner_password='…' \
--        -v app_login=crm_app -v app_password='…' -f scripts/external-postgres.sql
--
-- The owner owns the database, runs the migrations and registers tenants
-- (CRM_PIPELINE_DATABASE_URL); it needs no superuser or CREATEROLE. The application logs in as
-- app_login (CRM_PIPELINE_APP_DATABASE_URL), which is only a member of crm_pipeline_app: the role
-- every tenant-scoped transaction switches to, bound by row-level security.
-- scripts/test sets up its external PostgreSQL with exactly this file.
CREATE ROLE crm_pipeline_app NOLOGIN;
CREATE ROLE :"app_login" LOGIN PASSWORD :'app_password';
GRANT crm_pipeline_app TO :"app_login";
CREATE ROLE :"owner" LOGIN PASSWORD :'owner_password';
CREATE DATABASE :"database" OWNER :"owner";
