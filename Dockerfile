# The promoter worker, built from this repository.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY promoter ./promoter
COPY workflows ./workflows
COPY activities ./activities
RUN pip install --no-cache-dir .
RUN useradd --create-home promoter
USER promoter
ENTRYPOINT ["promoter"]
CMD ["worker"]
