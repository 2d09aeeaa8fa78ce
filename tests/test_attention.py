import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_fewcell.engine.core.errors import FewcellError
from napari_fewcell.engine.nets import attention


def _rand(n, m, d=8, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(n, d, generator=g), dim=1)
    p = F.normalize(torch.randn(m, d, generator=g), dim=1)
    labels = torch.randint(0, c, (m,), generator=g).numpy()
    return x, p, labels


@pytest.mark.parametrize("tau", [0.05, 0.1, 1.0, 2.0])
def test_exact_attention_equals_naive_formula(tau):
    x, p, labels = _rand(300, 50)
    keys = attention.exact_keys(p, labels)
    got = attention.attend(x, keys, tau)
    want = attention.naive_attention(x, p, keys.values, tau)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # by hand, Eq. 1–2 of the paper
    s = (x @ p.T) / tau
    beta = torch.exp(s - s.max(1, keepdim=True).values)
    beta = beta / beta.sum(1, keepdim=True)
    torch.testing.assert_close(got, beta @ keys.values, atol=1e-5, rtol=1e-5)


def test_chunked_equals_unchunked():
    x, p, labels = _rand(1000, 64)
    keys = attention.exact_keys(p, labels)
    whole = attention.attend(x, keys, 0.1, chunk=10_000)
    for chunk in (1, 7, 128, 999):
        torch.testing.assert_close(attention.attend(x, keys, 0.1, chunk=chunk), whole, atol=1e-6, rtol=1e-5)


def test_prototypes_with_a_key_per_pixel_are_exact():
    x, p, labels = _rand(200, 40)
    fast = attention.prototype_keys(p, labels, k=1000)
    exact = attention.exact_keys(p, labels)
    torch.testing.assert_close(attention.attend(x, fast, 0.1), attention.attend(x, exact, 0.1), atol=1e-5, rtol=1e-5)


def test_prototype_log_count_bias_weighs_duplicates_exactly():
    # 5 distinct vectors, each repeated a different number of times: 5 prototypes with
    # log-count biases must reproduce the exact attention over all repeated pixels
    x, p, _ = _rand(100, 5, c=2)
    reps = np.array([1, 3, 7, 2, 11])
    labels5 = np.array([0, 1, 0, 1, 1])
    p_full = torch.repeat_interleave(p, torch.from_numpy(reps), 0)
    labels_full = np.repeat(labels5, reps)
    fast = attention.prototype_keys(p_full, labels_full, k=5)
    assert fast.keys.shape[0] == 5
    exact = attention.exact_keys(p_full, labels_full)
    torch.testing.assert_close(attention.attend(x, fast, 0.2), attention.attend(x, exact, 0.2), atol=1e-5, rtol=1e-4)


def test_prototypes_reduce_keys_and_stay_close():
    x, p, labels = _rand(500, 4096, d=16, c=2)
    fast = attention.prototype_keys(p, labels, k=64)
    assert fast.keys.shape[0] <= 128
    # outputs are probability vectors over the classes
    out = attention.attend(x, fast, 0.1)
    torch.testing.assert_close(out.sum(1), torch.ones(500))


def test_bad_tau():
    x, p, labels = _rand(10, 10)
    with pytest.raises(FewcellError, match="positive"):
        attention.attend(x, attention.exact_keys(p, labels), 0.0)


def test_rebalanced_output_is_attention_over_keys_weighted_per_class():
    """Weighing each class's probability by n_c^-balance is attention whose keys of class c weigh n_c^-balance."""
    x, p, labels = _rand(200, 60, c=3)
    keys = attention.exact_keys(p, labels)
    counts = attention.key_counts(keys)
    torch.testing.assert_close(counts, torch.tensor([float((labels == c).sum()) for c in range(3)]))
    for balance in (0.5, 1.0):
        weighted = attention.exact_keys(p, labels, weights=np.bincount(labels).astype(float)[labels] ** -balance)
        torch.testing.assert_close(attention.rebalance(attention.attend(x, keys, 0.2), counts, balance),
                                   attention.attend(x, weighted, 0.2), atol=1e-5, rtol=1e-4)
    assert attention.rebalance(attention.attend(x, keys, 0.2), counts, 0.0) is not None


def test_balanced_attention_stops_a_big_class_from_outvoting_a_thin_one():
    """A query as similar to every key: plain attention answers with the classes' shares, balanced with halves."""
    keys = F.normalize(torch.ones(100, 4), dim=1)
    labels = np.array([0] * 95 + [1] * 5)
    for make in (attention.exact_keys, attention.prototype_keys):
        k = make(keys, labels)
        plain = attention.attend(keys[:1], k, 0.1)
        torch.testing.assert_close(plain[0], torch.tensor([0.95, 0.05]))
        fair = attention.rebalance(plain, attention.key_counts(k), 1.0)
        torch.testing.assert_close(fair[0], torch.tensor([0.5, 0.5]))
