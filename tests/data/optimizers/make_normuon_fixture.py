"""Known answers from zichongli5/NorMuon: SingleDeviceNorMuonWithAuxAdam on a tiny seeded problem.

Run OUTSIDE the repository, on ``normuon.py`` checked out at a commit into COMMIT_DIR (the fetched
code is never committed here); writes the per-step parameters, gradients and state as JSON.

usage: python make_normuon_fixture.py COMMIT_DIR {float32|bfloat16} OUT.json
"""

import importlib.util
import json
import sys

import torch

commit_dir, dtype_name, out = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("normuon_ref", f"{commit_dir}/normuon.py")
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20251205)
muon_shapes = {"tall": (6, 4), "wide": (4, 6), "square": (5, 5)}
adam_shapes = {"table": (3, 4), "gain": (5,)} if dtype == torch.float32 else {}
STEPS = 6
init = {n: torch.randn(*s, generator=gen) for n, s in {**muon_shapes, **adam_shapes}.items()}
params = {n: torch.nn.Parameter(t.to(dtype).clone()) for n, t in init.items()}
muon_cfg = dict(lr=0.02, momentum=0.95, beta2=0.95, weight_decay=0.1)
adam_cfg = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-10, weight_decay=0.1)
groups = [dict(params=[params[n] for n in muon_shapes], use_muon=True, **muon_cfg)]
if adam_shapes:
    groups.append(dict(params=[params[n] for n in adam_shapes], use_muon=False, **adam_cfg))
opt = mod.SingleDeviceNorMuonWithAuxAdam(groups)


def L(t):  # noqa: N802 - exact float lists
    return t.detach().float().tolist()


record = {"initial": {n: L(p) for n, p in params.items()}, "steps": []}
for t in range(STEPS):
    grads = {
        n: (torch.randn(p.shape, generator=gen) * (1 + t)).to(dtype) for n, p in params.items()
    }
    for n, p in params.items():
        p.grad = grads[n].clone()
    opt.step()
    record["steps"].append(
        {
            "grads": {n: L(g) for n, g in grads.items()},
            "params": {n: L(p) for n, p in params.items()},
            "state": {
                n: {k: L(v) for k, v in opt.state[p].items() if torch.is_tensor(v)}
                for n, p in params.items()
            },
        }
    )
record.update(
    dtype=dtype_name,
    muon_group=muon_cfg,
    adamw_group={**adam_cfg, "betas": list(adam_cfg["betas"])},
    muon_params=list(muon_shapes),
    adamw_params=list(adam_shapes),
    torch=torch.__version__,
)
json.dump(record, open(out, "w"))
print(out, "ok")
