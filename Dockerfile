# aggsched: API, scheduler and build workers in one image (README: "Install").
# Build: docker build -t aggsched .    Run several nodes: deploy/compose.yaml
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# the README's install, into a prefix copied into the runtime image
RUN python -m pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 --user-group aggsched
COPY --from=build /install /usr/local
USER 10001:10001
WORKDIR /home/aggsched
ENV AGGSCHED_HOME=/home/aggsched/data \
    AGGSCHED_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["aggsched"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
