"""One DistributedDataParallel training run on the CPU: ``python ddp_worker.py ROOT YAML IMGSZ OUT.json``.

Two processes (gloo backend, 127.0.0.1) each build the model from ``YAML`` out of the patched tree at
``ROOT``, wrap it in ``torch.nn.parallel.DistributedDataParallel`` with ``find_unused_parameters=False``
(what Ultralytics' trainer uses), and run two optimizer steps on batches of their own: the loss comes
from ``model(batch)``, as in Ultralytics' trainer. A parameter that takes no part in the loss makes the
second step fail ("Expected to have finished reduction in the prior iteration"). Rank 0 writes each
rank's weight checksum, losses and error (if any) to ``OUT.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import traceback

WORLD = 2


def run(rank: int, root: str, yaml: str, imgsz: int, out: str, port: int) -> None:
    sys.path.insert(0, root)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), YOLO_OFFLINE="1")
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    result = {"rank": rank}
    try:
        from ultralytics import RTDETR, YOLO

        torch.manual_seed(0)
        yolo = os.path.basename(yaml).lower().startswith("yolo")
        model = (YOLO if yolo else RTDETR)(yaml).model
        if yolo:
            from ultralytics.cfg import get_cfg

            model.args = get_cfg()
        model.nc = model.yaml.get("nc", 80)
        model.train()
        result["backbone"] = [type(m).__name__ for m in model.model if getattr(m, "backbone", False)]
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=1e-3, momentum=0.9)
        generator = torch.Generator().manual_seed(100 + rank)  # each rank sees its own data
        losses = []
        for _ in range(2):
            batch = {
                "img": torch.rand(2, 3, imgsz, imgsz, generator=generator),
                "batch_idx": torch.tensor([0.0, 1.0]),
                "cls": torch.tensor([[float(rank)], [3.0]]),
                "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.4], [0.3, 0.6, 0.2, 0.3]]),
            }
            loss, _ = ddp(batch)
            total = loss.sum()
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            losses.append(float(total.detach()))
        result["losses"] = losses
        digest = hashlib.sha256()
        for p in model.parameters():
            digest.update(p.detach().contiguous().numpy().tobytes())
        result["weights"] = digest.hexdigest()
        result["params"] = sum(p.numel() for p in model.parameters())
    except Exception as exc:  # every rank reports, rank 0 writes
        result["error"] = f"{type(exc).__name__}: {str(exc)[:1500]}"
        result["traceback"] = traceback.format_exc()[-3000:]
    gathered = [None] * WORLD
    dist.all_gather_object(gathered, result)
    if rank == 0:
        with open(out, "w", encoding="utf-8") as handle:
            json.dump({"ranks": gathered}, handle)
    dist.destroy_process_group()


def main() -> int:
    import torch.multiprocessing as mp

    root, yaml, imgsz, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(run, args=(root, yaml, imgsz, out, port), nprocs=WORLD, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
