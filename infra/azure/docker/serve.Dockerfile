# The HTTP API (`movierec serve`): reads the lake through fsspec (ADLS via adlfs, credentials from the
# environment: a managed identity, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET), no Spark and no Java.
# Built from the repository root:  docker build -f infra/azure/docker/serve.Dockerfile -t movierec-serve .
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY movierec_dagster ./movierec_dagster
COPY generator ./generator
# The project with its pinned dependencies (constraints.txt pins every transitive package).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt '.[serve]'

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MOVIEREC_SERVE_HOST=0.0.0.0 \
    MOVIEREC_SERVE_PORT=8000
RUN useradd --system --uid 10001 --user-group --no-create-home movierec
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
# MOVIEREC_LAKE names the lake: abfss://<container>@<account>.dfs.core.windows.net/<prefix>
CMD ["movierec", "serve"]
