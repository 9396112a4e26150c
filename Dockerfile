# The pgship image: the `pgship` command (migrate, serve, deploy...; installed as pgship[serve]) plus the release's migrations.
#
# BASE is any Debian-based image with Python 3.11 and the venv module:
#   - python:3.11-slim (default; CI and machines that reach a registry);
#   - pgship-local/debian-python:bookworm, imported offline by scripts/build-pgship-image.sh
#     where no registry is reachable.
# WHEELHOUSE (optional) names a directory of wheels in the build context, made on the host by
# `pip wheel`; when set, nothing is downloaded during the build. scripts/build-pgship-image.sh
# does both; `docker build .` alone installs from PyPI.
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ARG WHEELHOUSE=
# Lets scripts/build-pgship-image.sh remove this stage's image (the classic builder keeps it).
LABEL pgship.stage=build
COPY . /src
RUN python3 -m venv /opt/pgship \
    && if [ -n "$WHEELHOUSE" ]; then \
         /opt/pgship/bin/pip install --no-cache-dir --no-index --find-links "/src/$WHEELHOUSE" 'pgship[serve]'; \
       else \
         /opt/pgship/bin/pip install --no-cache-dir '/src[serve]'; \
       fi \
    && /opt/pgship/bin/pgship --help >/dev/null \
    && /opt/pgship/bin/python -c "import starlette, uvicorn, httpx"

FROM ${BASE}
ENV PATH=/opt/pgship/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PGSHIP_MIGRATIONS_DIR=/app/migrations
COPY --from=build /opt/pgship /opt/pgship
# "Shipped" migrations are the files of this release (DESIGN.md): they travel inside the image.
COPY docker/postgres/migrations/ /app/migrations/
WORKDIR /app
# Any unprivileged uid: the process only reads /app and talks to the network.
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["pgship"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
