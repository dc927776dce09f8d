# The ratings generator (`movierec-generate`), as the Azure Container Instance runs it. It needs only the
# Event Hubs client and azure-identity, at the versions constraints.txt pins, and the project's code.
# Built by deploy.sh with `az acr build` from a `git archive` of HEAD, or by hand from the repository root:
#   docker build -f infra/azure/docker/generator.Dockerfile -t movierec-generator .
FROM python:3.11.13-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY movierec_dagster ./movierec_dagster
COPY generator ./generator
RUN grep -E '^(azure-eventhub|azure-identity)==' constraints.txt > generator-requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -c constraints.txt -r generator-requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.13-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 --user-group --no-create-home generator
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["movierec-generate"]
CMD ["--sink", "eventhub", "--rate", "5"]
