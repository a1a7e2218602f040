"""Blur kernels: normalised, non-negative, and as strong as requested."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sbdn_pipeline.synth import kernels

SPECS = {
    "gaussian": kernels.KernelSpec("gaussian"),
    "defocus_round": kernels.KernelSpec("defocus"),
    "defocus_hexagonal_rim": kernels.KernelSpec("defocus", blades=6, rotation=0.3, rim=0.6),
    "motion": kernels.KernelSpec("motion", angle=0.7),
    "shake": kernels.KernelSpec(
        "shake", trajectory=kernels.random_shake_trajectory(np.random.default_rng(3))
    ),
    "mixture": kernels.KernelSpec(
        "mixture",
        parts=(kernels.KernelSpec("defocus"), kernels.KernelSpec("motion", angle=1.0)),
        first_share=0.6,
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("sigma", [1.5, 6.0])
def test_every_kernel_is_normalised_non_negative_and_odd_sized(name: str, sigma: float) -> None:
    kernel = SPECS[name].kernel(sigma)
    assert kernel.dtype == np.float32
    assert kernel.shape[0] % 2 == 1 and kernel.shape[1] % 2 == 1
    assert kernel.min() >= 0
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("sigma", [2.0, 8.0])
def test_kernel_effective_sigma_matches_the_requested_strength(name: str, sigma: float) -> None:
    measured = kernels.effective_sigma(SPECS[name].kernel(sigma))
    # Discretisation, the soft aperture edge and the rim move it a little, never by much.
    assert measured == pytest.approx(sigma, rel=0.2)


def test_effective_sigma_of_gaussian_is_its_sigma() -> None:
    assert kernels.effective_sigma(kernels.gaussian_kernel(4.0)) == pytest.approx(4.0, rel=0.02)


def test_motion_kernel_is_a_streak_along_its_angle() -> None:
    kernel = kernels.linear_motion_kernel(21.0, angle=0.0)  # horizontal
    rows_with_mass = np.flatnonzero(kernel.sum(axis=1) > 1e-3)
    cols_with_mass = np.flatnonzero(kernel.sum(axis=0) > 1e-3)
    assert len(rows_with_mass) <= 2
    assert len(cols_with_mass) >= 20


def test_defocus_kernel_is_flat_inside_the_aperture() -> None:
    kernel = kernels.defocus_kernel(8.0)
    centre = kernel.shape[0] // 2
    inside = kernel[centre - 4 : centre + 5, centre - 4 : centre + 5]
    assert inside.max() / inside.min() == pytest.approx(1.0, abs=1e-3)
    assert kernel[0, 0] == 0  # corners lie outside a round aperture


def test_shake_trajectory_has_unit_rms_radius() -> None:
    trajectory = kernels.random_shake_trajectory(np.random.default_rng(0))
    rms = math.sqrt((trajectory**2).sum(axis=1).mean())
    assert rms == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("kind", kernels.BLUR_KINDS)
def test_random_kernel_specs_of_every_kind_render(kind: str) -> None:
    spec = kernels.random_kernel_spec(kind, np.random.default_rng(1))
    assert spec.kind == kind
    assert spec.kernel(3.0).sum() == pytest.approx(1.0, abs=1e-5)


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown blur kind 'smear'"):
        kernels.KernelSpec("smear").kernel(2.0)
