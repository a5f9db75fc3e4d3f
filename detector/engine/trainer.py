"""Online training of a shard's shared model: completed windows wait in `pending`, and once a
step's worth are ready (`plan.step_size`: `train_batch`, more in a lane crowded with streams)
they make one Adam step, taken at a fixed point of the event sequence (the planner cuts
segments there), so the weights never depend on how events were batched."""

from __future__ import annotations

import math

import numpy as np
import torch

from detector.engine.forecast import PendingWindow
from detector.engine.lstm_ae import LstmAutoencoder


class Trainer:
    def __init__(self, model: LstmAutoencoder, learning_rate: float) -> None:
        # The model has no dropout or normalisation layer, so its training and evaluation
        # modes compute the same: it stays as built, without the 0.3 ms per step that
        # switching modes twice costs.
        self.model = model
        # Fused: one kernel per step instead of a handful of ops per parameter (the model is
        # small, so a training step is mostly call overhead: 13 % less per step).
        self.optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)
        self.pending: list[PendingWindow] = []
        self.steps = 0
        self.last_loss = math.nan

    def step(self) -> None:
        """One step on the pending windows, in event order."""
        samples = [sample for _, sample in sorted(self.pending, key=lambda p: p[0])]
        self.pending.clear()
        batch = {name: torch.from_numpy(np.stack([smp[name] for smp in samples]))
                 for name in samples[0]}
        loss = self.model.window_loss(batch["h0"], batch["c0"], batch["hist"],
                                      batch["hist_valid"], batch["hist_time"],
                                      batch["hist_prior"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.steps += 1
        self.last_loss = float(loss.detach())

    def state(self) -> dict[str, np.ndarray]:
        """Weights, optimiser moments and pending windows as named arrays."""
        arrays = {f"w/{k}": v.detach().numpy().copy()
                  for k, v in self.model.state_dict().items()}
        for i, state in self.optimizer.state_dict()["state"].items():
            for name, value in state.items():
                arrays[f"opt/{i}/{name}"] = value.detach().numpy().copy()
        # One array per field with a row per window: a crowded lane holds a thousand windows
        # or more, and an array each made a checkpoint thousands of archive members.
        if self.pending:
            arrays["pending/seq"] = np.array([seq for seq, _ in self.pending], dtype=np.int64)
            for name in self.pending[0][1]:
                arrays[f"pending/{name}"] = np.stack([w[name] for _, w in self.pending])
        return arrays

    def restore(self, a: dict[str, np.ndarray], pending: int) -> None:
        """Load what `state` gave (`pending`: how many windows it held)."""
        self.model.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in a.items()
                                    if k.startswith("w/")})
        opt = self.optimizer.state_dict()
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in a.items():
            if key.startswith("opt/"):
                _, i, name = key.split("/", 2)
                state.setdefault(int(i), {})[name] = torch.from_numpy(value.copy())
        self.optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
        self.pending = []
        if pending and "pending/seq" in a:
            names = [k[len("pending/"):] for k in a
                     if k.startswith("pending/") and k != "pending/seq"]
            self.pending = [(int(seq), {name: a[f"pending/{name}"][j].copy() for name in names})
                            for j, seq in enumerate(a["pending/seq"])]
            return
        for j in range(pending):  # shared state version 2: an array per window and field
            prefix = f"pending/{j}/"
            sample = {k[len(prefix):]: v for k, v in a.items()
                      if k.startswith(prefix) and k != prefix + "seq"}
            self.pending.append((int(a[prefix + "seq"]), sample))
