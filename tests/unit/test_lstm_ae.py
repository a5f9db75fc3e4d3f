"""The fused training loss equals its step-by-step definition, for both encoder variants."""

from __future__ import annotations

import pytest
import torch

from detector.engine.lstm_ae import LstmAutoencoder


def stepwise_loss(m: LstmAutoencoder, h0, c0, hist, valid, time, prior) -> torch.Tensor:
    k = m.window
    h, c = h0, c0
    total, weight = 0.0, 0.0
    for j in range(k):
        pos = k + j
        code = (m.encode_window(hist[:, pos - k:pos], valid[:, pos - k:pos],
                                time[:, pos - k:pos]) if m.bidirectional else None)
        recon = m.decode(h, time[:, pos], hist[:, pos - 1] + prior[:, pos], code)
        mask = valid[:, j + 1:pos + 1]
        total = total + (mask * (recon - hist[:, j + 1:pos + 1]) ** 2).sum()
        weight = weight + mask.sum()
        h, c = m.step(hist[:, pos], valid[:, pos], time[:, pos], h, c)
    return total / weight


@pytest.mark.parametrize("bidirectional", [False, True])
def test_window_loss_matches_the_stepwise_definition(bidirectional: bool) -> None:
    torch.manual_seed(0)
    m = LstmAutoencoder(n_metrics=3, n_time=4, hidden=8, window=4, bidirectional=bidirectional)
    b, k = 5, 4
    args = (torch.randn(b, 8), torch.randn(b, 8), torch.randn(b, 2 * k, 3),
            (torch.rand(b, 2 * k, 3) > 0.2).float(), torch.randn(b, 2 * k, 4),
            torch.randn(b, 2 * k, 3))
    assert m.window_loss(*args).item() == pytest.approx(stepwise_loss(m, *args).item(),
                                                         rel=1e-5)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_forecast_and_step_equals_decode_and_step_bit_for_bit(bidirectional: bool) -> None:
    torch.manual_seed(1)
    m = LstmAutoencoder(n_metrics=3, n_time=4, hidden=8, window=4, bidirectional=bidirectional)
    b = 5
    h, c, z, valid, time, last = (torch.randn(b, 8), torch.randn(b, 8), torch.randn(b, 3),
                                  (torch.rand(b, 3) > 0.2).float(), torch.randn(b, 4),
                                  torch.randn(b, 3))
    code = torch.randn(b, 8) if bidirectional else None
    context = time if code is None else torch.cat((code, time), dim=1)
    x = torch.cat((z * valid, valid, time), dim=1)
    with torch.inference_mode():
        out, h2, c2 = m.forecast_and_step(h, c, x, context)
        assert torch.equal(out + last, m.decode(h, time, last, code)[:, -1])
        h_ref, c_ref = m.step(z, valid, time, h, c)
        assert torch.equal(h2, h_ref) and torch.equal(c2, c_ref)
