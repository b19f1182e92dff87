#!/usr/bin/env python3
"""Peak memory of `charchat import --from` against the size of the file (issue 20's goal:
<= 1.3x the file). OpenAI's weights cannot be downloaded here, so the file is a GPT-2 of the
chosen size with random weights in the hub's layout (the same tensors, names and float32 as
the real model.safetensors). The import runs in a child process; its peak resident memory
(ru_maxrss) is read when it ends. Prints one JSON object.

    python benchmarks/bench_import.py [--size gpt2|gpt2-medium|gpt2-large|gpt2-xl]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"gpt2": (12, 768), "gpt2-medium": (24, 1024), "gpt2-large": (36, 1280),
          "gpt2-xl": (48, 1600)}


def make_checkpoint(path: Path, n_layer: int, C: int) -> None:
    """A hub-layout GPT-2 model.safetensors of random float32 weights, written tensor by tensor
    (safetensors' own save_file would hold them all in memory; so would this script's parent,
    which is why the import runs in a child)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    sd = {"wte.weight": rnd(50257, C), "wpe.weight": rnd(1024, C),
          "ln_f.weight": torch.ones(C), "ln_f.bias": torch.zeros(C)}
    for i in range(n_layer):
        p = f"h.{i}."
        sd.update({p + "ln_1.weight": torch.ones(C), p + "ln_1.bias": torch.zeros(C),
                   p + "ln_2.weight": torch.ones(C), p + "ln_2.bias": torch.zeros(C),
                   p + "attn.c_attn.weight": rnd(C, 3 * C), p + "attn.c_attn.bias": rnd(3 * C),
                   p + "attn.c_proj.weight": rnd(C, C), p + "attn.c_proj.bias": rnd(C),
                   p + "mlp.c_fc.weight": rnd(C, 4 * C), p + "mlp.c_fc.bias": rnd(4 * C),
                   p + "mlp.c_proj.weight": rnd(4 * C, C), p + "mlp.c_proj.bias": rnd(C),
                   p + "attn.bias": torch.tril(torch.ones(1, 1, 1024, 1024))})
    save_file(sd, str(path))


CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from charchat import gpt2import
t0 = time.perf_counter()
gpt2import.import_file({path!r}, "bench")
print(json.dumps({{"seconds": time.perf_counter() - t0,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=SHAPES, default="gpt2")
    args = ap.parse_args()
    n_layer, C = SHAPES[args.size]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = d / "src" / "model.safetensors"
        src.parent.mkdir()
        made = subprocess.run([sys.executable, "-c", (
            f"import sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
            f"import bench_import as b; from pathlib import Path; "
            f"b.make_checkpoint(Path({str(src)!r}), {n_layer}, {C})")])
        if made.returncode:
            return 1
        size = src.stat().st_size
        env = {"CHARCHAT_HOME": str(d / "home"), "PATH": "/usr/bin:/bin"}
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(src))],
                             capture_output=True, text=True, env=env)
        if out.returncode:
            sys.stderr.write(out.stderr)
            return 1
        r = json.loads(out.stdout)
        model = d / "home" / "models" / "bench" / "model.pt"
        print(json.dumps({"size": args.size, "file_mb": size / 2**20,
                          "model_pt_mb": model.stat().st_size / 2**20,
                          "import_s": r["seconds"], "wall_s": time.perf_counter() - t,
                          "peak_rss_mb": r["peak_rss_mb"],
                          "peak_over_file": r["peak_rss_mb"] * 2**20 / size, "goal": 1.3}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
