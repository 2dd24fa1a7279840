# CPU image: runs nemotron's tiny pipeline (for now the artifact demo) without a GPU.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/nemotron
COPY . .
# The CPU wheel index keeps a CUDA torch out; constraints/cpu.txt pins the same release.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir -c constraints/cpu.txt -e .
WORKDIR /work
CMD ["nemotron", "demo"]
