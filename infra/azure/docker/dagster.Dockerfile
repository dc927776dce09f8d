# The Dagster image of the Azure deployment: the code location, the daemon and the webserver run from it
# (the Container App's command picks one; the default is the code location). Spark work goes to Databricks,
# so there is no Java here. Built by deploy.sh with `az acr build` from a `git archive` of HEAD, or by hand
# from the repository root:  docker build -f infra/azure/docker/dagster.Dockerfile -t movierec-dagster .
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY movierec_dagster ./movierec_dagster
COPY generator ./generator
# The project with its pinned dependencies (constraints.txt pins every transitive package).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt .

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home
RUN useradd --system --uid 10001 --user-group --no-create-home dagster \
    && mkdir -p /opt/dagster/home /opt/movierec \
    && chown dagster:dagster /opt/dagster/home
COPY --from=build /opt/venv /opt/venv
# The instance (PostgreSQL, compute logs in Blob Storage) and the workspace the webserver and daemon load.
COPY infra/azure/dagster.yaml /opt/dagster/home/dagster.yaml
COPY infra/azure/docker/workspace.yaml /opt/movierec/workspace.yaml
USER 10001:10001
WORKDIR /opt/movierec
EXPOSE 3000 4000
CMD ["dagster", "code-server", "start", "--host", "0.0.0.0", "--port", "4000", \
     "--module-name", "movierec_dagster.definitions", "--location-name", "movierec"]
