# syntax=docker/dockerfile:1
# sentistream images, two final targets:
#   docker build --target cpu -t sentistream:latest-cpu .   (python slim, CPU torch)
#   docker build --target gpu -t sentistream:latest-gpu .   (CUDA runtime, CUDA torch)
# docker-compose.yml builds both. No secrets are baked in: tokens and passwords come from the
# environment at run time (.env).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
ARG TORCH_VERSION=2.13.0
# Extras from pyproject.toml the services need (quantization, SparTA adapters, trainer, console).
ARG EXTRAS=quant,sparta,train,console

# ---- requirements: pinned dependency list from pyproject.toml --------------------------------
# A separate stage so that editing source code does not invalidate the dependency layers.
FROM ${PYTHON_IMAGE} AS requirements
ARG EXTRAS
WORKDIR /src
COPY pyproject.toml .
# (python -c rather than a RUN heredoc, so the classic builder of docker-compose v1 works too)
RUN python -c 'import os, tomllib; \
p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
deps = [d for d in p["dependencies"] if not d.startswith("torch")]; \
deps += [d for e in filter(None, os.environ["EXTRAS"].split(",")) for d in p["optional-dependencies"][e]]; \
open("/requirements.txt", "w").write("\n".join(deps) + "\n")'

# ---- CPU build: venv with CPU-only torch ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS build-cpu
ARG TORCH_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The CPU wheel index: the default PyPI torch wheel pulls gigabytes of CUDA libraries.
RUN pip install torch==${TORCH_VERSION} --index-url https://download.pytorch.org/whl/cpu
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY models ./models
COPY daemon ./daemon
COPY training ./training
RUN pip install --no-deps .

# ---- CUDA base: the runtime image plus a Python interpreter -------------------------------
FROM ${CUDA_IMAGE} AS cuda-python
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# ---- GPU build: venv with the CUDA torch build --------------------------------------------
FROM cuda-python AS build-gpu
ARG TORCH_VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip install torch==${TORCH_VERSION}
COPY --from=requirements /requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY models ./models
COPY daemon ./daemon
COPY training ./training
RUN pip install --no-deps .

# ---- final: CPU ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS cpu
COPY --from=build-cpu /opt/venv /opt/venv
# Directories the named volumes mount on: created here so new volumes inherit the ownership.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin sentistream \
 && mkdir -p /var/lib/sentistream/adapters /var/lib/sentistream/reports /var/cache/huggingface \
 && chown -R sentistream:sentistream /var/lib/sentistream /var/cache/huggingface
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/var/cache/huggingface
USER sentistream
WORKDIR /home/sentistream
EXPOSE 9108
ENTRYPOINT ["sentistream"]
CMD ["run"]

# ---- final: GPU ----------------------------------------------------------------------------
FROM cuda-python AS gpu
COPY --from=build-gpu /opt/venv /opt/venv
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin sentistream \
 && mkdir -p /var/lib/sentistream/adapters /var/lib/sentistream/reports /var/cache/huggingface \
 && chown -R sentistream:sentistream /var/lib/sentistream /var/cache/huggingface
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/var/cache/huggingface \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER sentistream
WORKDIR /home/sentistream
EXPOSE 9108
ENTRYPOINT ["sentistream"]
CMD ["run"]
