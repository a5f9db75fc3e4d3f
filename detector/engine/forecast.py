"""Pass 2 of a segment, the model: each event's forecast from its stream's carried LSTM state,
then the state steps over the event. Wave by wave (the state carries); the bidirectional
encoder's window codes of the whole segment are one call, since its rows do not depend on each
other. Windows completed in pass 1 are handed to training with the state at their start.
Unlike the other passes, this one runs per segment: the weights change between segments."""

from __future__ import annotations

import numpy as np
import torch

from detector.engine.lstm_ae import LstmAutoencoder
from detector.engine.observe import Observed

# (engine event number, window arrays): a window waiting for a training step.
PendingWindow = tuple[int, dict[str, np.ndarray]]


def forecast(model: LstmAutoencoder, a: dict[str, np.ndarray], bounds: list[tuple[int, int]],
             s_all: np.ndarray, seqs: np.ndarray, obs: Observed, valid: np.ndarray,
             tf: np.ndarray, bidirectional: bool, pending: list[PendingWindow]) -> np.ndarray:
    """The forecast of every event of the segment in z units (float64); appends the windows
    completed to `pending`."""
    valid32 = valid.astype(np.float32)
    x = torch.from_numpy(np.concatenate((obs.z * valid32, valid32, tf), axis=1))
    h_all, c_all = a["h"], a["c"]
    sizes = [hi - lo for lo, hi in bounds]
    outs = []
    ready = iter(obs.ready)
    window = next(ready, None)
    with torch.inference_mode():
        context = torch.from_numpy(tf)
        if bidirectional:
            code = model.encode_window(*(torch.from_numpy(w) for w in obs.windows))
            context = torch.cat((code, context), dim=1)
        for (lo, hi), xw, cw in zip(bounds, x.split(sizes), context.split(sizes), strict=True):
            s = s_all[lo:hi]
            out, h, c = model.forecast_and_step(torch.from_numpy(h_all[s]),
                                                torch.from_numpy(c_all[s]), xw, cw)
            h_all[s], c_all[s] = h.numpy(), c.numpy()
            outs.append(out)
            while window is not None and window[0] < hi:
                row, sample = window
                slot = s_all[row]
                pending.append((int(seqs[row]), {
                    "h0": a["h0"][slot].copy(), "c0": a["c0"][slot].copy(), **sample}))
                window = next(ready, None)
            done = s[obs.done[lo:hi]]
            if done.size:
                a["h0"][done], a["c0"][done] = h_all[done], c_all[done]
        out = torch.cat(outs) + torch.from_numpy(obs.last)
    return out.numpy().astype(np.float64)
