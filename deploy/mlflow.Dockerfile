# MLflow tracking server with PostgreSQL support, for deploy/compose.yaml.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m pip install "mlflow==3.17.2" "psycopg2-binary>=2.9"
RUN useradd --create-home --uid 10001 --user-group mlflow && mkdir /mlartifacts \
    && chown mlflow:mlflow /mlartifacts
USER 10001:10001
EXPOSE 5000
