"""The LSTM autoencoder: a gated cell carried per stream, and a decoder for the recent window.

At each event the decoder reconstructs the stream's last `window` inputs from the state carried
up to the previous event plus the event's time features. The newest element of that window
has not been seen by the state yet, so its reconstruction is also the model's forecast: the
`expected` values of an alert. That forecast is learnt as a correction to the last value seen
(persistence), so an untrained model already forecasts sensibly and learning refines it.
Training uses truncated back-propagation over one window.

With `bidirectional`, a bidirectional LSTM also encodes the last `window` inputs seen (read
both ways, from a zero state) and the decoder sees that code beside the carried state.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class LstmAutoencoder(nn.Module):
    def __init__(self, n_metrics: int, n_time: int, hidden: int, window: int,
                 bidirectional: bool = False) -> None:
        super().__init__()
        self.n_metrics, self.n_time, self.hidden, self.window = n_metrics, n_time, hidden, window
        self.bidirectional = bidirectional
        # Input: normalised values, their presence flags, time features.
        n_in = 2 * n_metrics + n_time
        self.cell = nn.LSTMCell(n_in, hidden)
        code = 0
        if bidirectional:
            half = max(hidden // 2, 1)
            self.window_encoder = nn.LSTM(n_in, half, batch_first=True, bidirectional=True)
            code = 2 * half
        self.decoder = nn.Sequential(
            nn.Linear(hidden + code + n_time, hidden), nn.Tanh(),
            nn.Linear(hidden, window * n_metrics))

    def encode_window(self, z: torch.Tensor, valid: torch.Tensor, time: torch.Tensor
                      ) -> torch.Tensor:
        """[B, 2 * hidden // 2] code of the inputs [B, window, ...] read both ways."""
        _, (h_n, _) = self.window_encoder(torch.cat((z * valid, valid, time), dim=2))
        return torch.cat((h_n[0], h_n[1]), dim=1)

    def step(self, z: torch.Tensor, valid: torch.Tensor, time: torch.Tensor,
             h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cell(torch.cat((z * valid, valid, time), dim=1), (h, c))

    def decode(self, h: torch.Tensor, time: torch.Tensor, last: torch.Tensor,
               code: torch.Tensor | None = None) -> torch.Tensor:
        """[B, window, n_metrics] reconstruction of the window ending at the coming event;
        `last` [B, n_metrics] is the newest value seen (the persistence forecast), `code`
        the bidirectional window code when the model has one."""
        parts = (h, time) if code is None else (h, code, time)
        out = self.decoder(torch.cat(parts, dim=1)).view(-1, self.window, self.n_metrics)
        return torch.cat((out[:, :-1], out[:, -1:] + last[:, None]), dim=1)

    def forecast_and_step(self, h: torch.Tensor, c: torch.Tensor, x: torch.Tensor,
                          context: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(newest row of `decode` before `last` is added, h', c') for one event per row:
        `context` is cat(code, time) or time, `x` the cell input cat(z * valid, valid, time).
        Bitwise the same as `decode` and `step`, calling their kernels directly: a wave of
        one stream pays the call overhead per event."""
        first, second = self.decoder[0], self.decoder[2]
        hidden = torch.tanh(F.linear(torch.cat((h, context), dim=1), first.weight, first.bias))
        out = F.linear(hidden, second.weight, second.bias)[:, -self.n_metrics:]
        cell = self.cell
        h2, c2 = torch.lstm_cell(x, (h, c), cell.weight_ih, cell.weight_hh, cell.bias_ih,
                                 cell.bias_hh)
        return out, h2, c2

    def window_loss(self, h0: torch.Tensor, c0: torch.Tensor, hist: torch.Tensor,
                    hist_valid: torch.Tensor, hist_time: torch.Tensor,
                    hist_prior: torch.Tensor) -> torch.Tensor:
        """Masked MSE over one chunk: hist holds 2K steps, the chunk is the newest K.

        Before consuming chunk input j (at position K + j) the model reconstructs the window
        ending there; the LSTM runs over the chunk in one fused call and the K decodes are
        one batched call (the step-by-step definition is in the tests).
        """
        k, batch = self.window, hist.shape[0]
        chunk = slice(k, 2 * k)
        x = torch.cat((hist[:, chunk] * hist_valid[:, chunk], hist_valid[:, chunk],
                       hist_time[:, chunk]), dim=2)
        cell = self.cell
        out, _, _ = torch.lstm(x, (h0[None], c0[None]),
                               [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh],
                               True, 1, 0.0, self.training, False, True)
        before = torch.cat((h0[:, None], out[:, :-1]), dim=1)           # [B, K, H]
        last = hist[:, k - 1:2 * k - 1]                                 # [B, K, D]
        if hist_prior.shape[-1]:  # seasonal steps on (off, the arena has no prior columns)
            last = last + hist_prior[:, chunk]
        code = None
        if self.bidirectional:
            seen = [t[:, :2 * k - 1].unfold(1, k, 1).transpose(2, 3).reshape(batch * k, k, -1)
                    for t in (hist, hist_valid, hist_time)]
            code = self.encode_window(*seen)
        recon = self.decode(before.reshape(batch * k, -1),
                            hist_time[:, chunk].reshape(batch * k, -1),
                            last.reshape(batch * k, -1), code).view(batch, k, k, -1)
        target = hist[:, 1:].unfold(1, k, 1).transpose(2, 3)           # [B, K, K, D]
        mask = hist_valid[:, 1:].unfold(1, k, 1).transpose(2, 3)
        return (mask * (recon - target) ** 2).sum() / mask.sum().clamp_min(1.0)
