"""Property tests (hypothesis): identity, symmetry, ranges, masks that cover everything."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics

shapes = st.tuples(st.integers(1, 3), st.integers(11, 24), st.integers(11, 24))


@st.composite
def image_pairs(draw):
    n, h, w = draw(shapes)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    a = torch.from_numpy(rng.random((n, 3, h, w))).float()
    b = torch.from_numpy(rng.random((n, 3, h, w))).float()
    return a, b


@settings(max_examples=40, deadline=None)
@given(image_pairs())
def test_identical_inputs(pair):
    a, _ = pair
    assert torch.all(metrics.l2(a, a) == 0)
    assert torch.all(metrics.l1(a, a) == 0)
    assert torch.all(torch.isinf(metrics.psnr(a, a)))
    torch.testing.assert_close(metrics.ssim(a, a), torch.ones(a.shape[0]), atol=1e-5, rtol=0)


@settings(max_examples=40, deadline=None)
@given(image_pairs())
def test_symmetry_and_ranges(pair):
    a, b = pair
    for kernel in (metrics.l1, metrics.l2, metrics.psnr, metrics.ssim):
        torch.testing.assert_close(kernel(a, b), kernel(b, a), atol=1e-5, rtol=1e-5)
    assert torch.all(metrics.l2(a, b) >= 0)
    ssim = metrics.ssim(a, b)
    assert torch.all((ssim <= 1 + 1e-6) & (ssim >= -1 - 1e-6))
    mse = metrics.l2(a, b)
    torch.testing.assert_close(metrics.psnr(a, b), -10 * torch.log10(mse))


@settings(max_examples=30, deadline=None)
@given(image_pairs())
def test_full_mask_equals_no_mask(pair):
    a, b = pair
    ones = torch.ones(a.shape[0], 1, *a.shape[2:])
    for kernel in (metrics.l1, metrics.l2, metrics.psnr, metrics.ssim):
        torch.testing.assert_close(kernel(a, b, ones), kernel(a, b), atol=1e-6, rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.001, 0.2), st.integers(16, 32))
def test_psnr_of_constant_offset_is_closed_form(offset, size):
    a = torch.full((1, 3, size, size), 0.5)
    b = a + offset
    assert math.isclose(metrics.psnr(a, b).item(), -10 * math.log10(offset**2), abs_tol=1e-3)
