# PostgreSQL 15 from Debian packages, standing in for the registry's `postgres` image where no registry
# can be reached (compose.local.yaml). Same contract as that image for what compose.yaml uses:
# POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD_FILE, data in /var/lib/postgresql/data, port 5432.
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint"]
