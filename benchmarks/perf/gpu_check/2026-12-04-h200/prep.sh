#!/bin/bash
# Device call 1: keep the first part of the MiniLM weights on the machine, install merbench (editable, offline), report the environment.
set -x
mkdir -p /tmp/gpu && cp .gpu/a/minilm.part1 /tmp/gpu/ && ls -la /tmp/gpu
nvidia-smi -L
pwd; python3 -V; command -v python python3 git bench
python3 -c "import torch, transformers, sentence_transformers, sklearn, typer, rich, yaml, pandas, scipy, matplotlib, torch_geometric, safetensors, importlib.metadata as m; print(torch.__version__, torch.cuda.is_available(), transformers.__version__, m.version('typing_extensions'))"
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -3
command -v bench; python3 -c "import merbench, merbench.methods; print(merbench.__file__)"
