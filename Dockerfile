# lrsweep on a cluster: Python, PyTorch (CPU or CUDA), Ray and lrsweep from this source tree.
# Build from the repository root (the context must hold the source tree):
#   docker build -t lrsweep:0.1.0-cpu .
#   docker build --build-arg VARIANT=cuda -t lrsweep:0.1.0-cuda .
# The CUDA variant takes PyPI's Linux x86-64 torch, which is the CUDA build and brings its own
# CUDA runtime: the nodes need only an NVIDIA driver (and the NVIDIA container toolkit). For
# another CUDA version name PyTorch's index, e.g. --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
# Both variants run the same code; clusters/README.md shows where each image goes.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

ARG VARIANT=cpu
# Keep equal to constraints/cpu.txt (a test checks it).
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""

# HOME is set explicitly: Ray's cluster launcher reads it from the image to place file mounts.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    HOME=/home/lrsweep

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# torch first, from the index of the chosen variant; then check that the build matches it.
RUN case "${VARIANT}" in \
      cpu) index="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" ;; \
      cuda) index="${TORCH_INDEX_URL:-https://pypi.org/simple}" ;; \
      *) echo "VARIANT must be cpu or cuda, got '${VARIANT}'" >&2; exit 2 ;; \
    esac \
    && pip install --no-cache-dir --index-url "${index}" "torch==${TORCH_VERSION}" \
    && python -c "import sys, torch; built = 'cpu' if torch.version.cuda is None else 'cuda'; sys.exit(0 if built == '${VARIANT}' else f'VARIANT=${VARIANT} but torch {torch.__version__} is a {built} build')"

RUN useradd --create-home --uid 1000 --shell /bin/bash lrsweep

# lrsweep itself; torch stays the one installed above (same version pinned again).
WORKDIR /opt/lrsweep
COPY pyproject.toml README.md ./
COPY constraints/ constraints/
COPY trials/ trials/
COPY orchestrator/ orchestrator/
COPY analysis/ analysis/
COPY examples/ examples/
RUN pip install --no-cache-dir . "torch==${TORCH_VERSION}" \
    && lrsweep --help > /dev/null \
    && python -c "import ray, torch, orchestrator, trials, analysis"

USER 1000
WORKDIR /home/lrsweep
