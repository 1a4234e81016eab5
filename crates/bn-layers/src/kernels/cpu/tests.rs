//! Each kernel against a direct f64 evaluation of its formula (the textbook algorithm,
//! written out below) on odd shapes.

use super::*;

fn data(len: usize, seed: u64, offset: f64, spread: f64) -> Vec<f64> {
    // A small LCG: deterministic values in [-1, 1), scaled and shifted.
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            offset + spread * (2.0 * unit - 1.0)
        })
        .collect()
}

fn reference_channel_moments(x: &[f64], d: ChannelDims) -> (Vec<f64>, Vec<f64>) {
    let values =
        |ch: usize| (0..d.n).flat_map(move |n| (0..d.s).map(move |s| (n * d.c + ch) * d.s + s));
    (0..d.c)
        .map(|ch| {
            let m = (d.n * d.s) as f64;
            let mean = values(ch).map(|i| x[i]).sum::<f64>() / m;
            let var = values(ch).map(|i| (x[i] - mean).powi(2)).sum::<f64>() / m;
            (mean, var)
        })
        .unzip()
}

#[track_caller]
fn assert_all_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "index {i}: {g} vs {w}"
        );
    }
}

#[test]
fn channel_moments_match_the_definition_at_every_layout() {
    // (300, 3, 300): several shares of 218 runs each, so shares start mid-way through
    // the cycle of channels.
    for (n, c, s) in [
        (2, 1, 1),
        (5, 3, 1),
        (2, 3, 7),
        (3, 2, 1000),
        (1, 4, 2),
        (300, 3, 300),
    ] {
        let d = ChannelDims { n, c, s };
        let x = data(n * c * s, 1, 0.5, 2.0);
        let (mean, var) = channel_moments(&x, d);
        let (want_mean, want_var) = reference_channel_moments(&x, d);
        assert_all_close(&mean, &want_mean, 1e-13);
        assert_all_close(&var, &want_var, 1e-12);
    }
}

#[test]
fn runs_whose_first_values_are_far_from_their_mean_are_re_centred() {
    // Each run of 1000 starts with 16 zeros and goes on near 1e4: the pivot (the mean of
    // the first 16 values) is 0, eight standard deviations from the mean, so the second
    // pass re-centres. Both passes sum in f32 lanes (64 terms each here), which bounds the
    // variance's accuracy to a few 1e-6.
    let d = ChannelDims {
        n: 2,
        c: 2,
        s: 1000,
    };
    let x32: Vec<f32> = (0..d.n * d.c * d.s)
        .map(|i| match i % d.s < 16 {
            true => 0.0,
            false => 1e4 + (i % 7) as f32 * 0.25,
        })
        .collect();
    let exact: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let (mean, var) = channel_moments(&x32, d);
    let (want_mean, want_var) = reference_channel_moments(&exact, d);
    assert_all_close(&mean, &want_mean, 1e-12);
    assert_all_close(&var, &want_var, 1e-5);
}

#[test]
fn f32_moments_of_a_large_mean_keep_their_digits() {
    // x = 1e4 + small spread: one-pass Σx² - (Σx)²/m would lose every digit in f32 and
    // most in f64; the centred moments stay exact to f64 rounding of the f32 inputs.
    let d = ChannelDims {
        n: 4096,
        c: 1,
        s: 1,
    };
    let x64 = data(4096, 7, 1e4, 1.0);
    let x32: Vec<f32> = x64.iter().map(|&v| v as f32).collect();
    let exact: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
    let (mean, var) = channel_moments(&x32, d);
    let (want_mean, want_var) = reference_channel_moments(&exact, d);
    assert_all_close(&mean, &want_mean, 1e-14);
    assert_all_close(&var, &want_var, 1e-10);
}

#[test]
fn a_nan_or_infinity_gives_the_moments_plain_arithmetic_gives() {
    // Σx/m and Σ(x - mean)²/m as PyTorch computes them: one +∞ or two in different runs
    // (merged across runs and shares) give mean +∞; +∞ and -∞ give NaN; a NaN gives NaN.
    // The variance of a channel with any of them is NaN; the clean channel is untouched.
    let d = ChannelDims { n: 64, c: 4, s: 3 };
    let mut x = data(64 * 4 * 3, 11, 0.5, 2.0);
    let at = |n: usize, c: usize, s: usize| (n * 4 + c) * 3 + s;
    x[at(0, 1, 0)] = f64::INFINITY;
    x[at(63, 1, 2)] = f64::INFINITY;
    x[at(5, 2, 1)] = f64::INFINITY;
    x[at(40, 2, 0)] = f64::NEG_INFINITY;
    x[at(20, 3, 1)] = f64::NAN;
    let (mean, var) = channel_moments(&x, d);
    assert!(mean[0].is_finite() && var[0].is_finite());
    assert_eq!(mean[1], f64::INFINITY);
    assert!(mean[2].is_nan() && mean[3].is_nan());
    assert!(var[1..].iter().all(|v| v.is_nan()), "{var:?}");
}

#[test]
fn channel_gradients_in_place_and_out_of_place_agree_with_the_formula() {
    for (n, c, s) in [(2, 1, 1), (3, 5, 1), (2, 3, 9), (300, 3, 300)] {
        let d = ChannelDims { n, c, s };
        let x = data(n * c * s, 2, 1.0, 1.0);
        let dy = data(n * c * s, 3, 0.0, 1.0);
        let (mean, _) = channel_moments(&x, d);
        let sums = channel_grad_sums(&x, &dy, &mean, d);
        let (s1, s2) = (&sums.dy, &sums.dy_x);
        let k = ChannelGrad::<f64>::new(&mean, &vec![2.0; c], &vec![-0.5; c], &vec![0.25; c]);
        let mut out = vec![0.0; x.len()];
        apply_channel_grad(&mut out, &x, Some(&dy), d, &k);
        let mut in_place = dy.clone();
        apply_channel_grad(&mut in_place, &x, None, d, &k);
        assert_eq!(out, in_place);
        for ch in 0..c {
            let idx: Vec<usize> = (0..n)
                .flat_map(|i| (0..s).map(move |j| (i * c + ch) * s + j))
                .collect();
            let want_s1: f64 = idx.iter().map(|&i| dy[i]).sum();
            let want_s2: f64 = idx.iter().map(|&i| dy[i] * (x[i] - mean[ch])).sum();
            assert_all_close(&[s1[ch], s2[ch]], &[want_s1, want_s2], 1e-12);
            for &i in &idx {
                let want = dy[i] * 2.0 - 0.5 * (x[i] - mean[ch]) + 0.25;
                assert_all_close(&[out[i]], &[want], 1e-14);
            }
        }
    }
}

#[test]
fn row_norm_and_its_backward_match_the_formula() {
    // GroupNorm-like (s > 1) and LayerNorm-like (s = 1) rows, per-channel affine.
    for (rows, groups, cpg, s) in [(6, 3, 2, 5), (4, 1, 7, 1), (2, 2, 1, 3)] {
        let d = RowDims {
            groups,
            channels_per_group: cpg,
            s,
        };
        let (k, c) = (cpg * s, groups * cpg);
        let x = data(rows * k, 4, -2.0, 3.0);
        let dy = data(rows * k, 5, 0.1, 1.0);
        let gamma = data(c, 6, 1.0, 0.5);
        let beta = data(c, 8, 0.0, 0.5);
        let eps = 1e-5;
        let mut y = vec![0.0; x.len()];
        let (mean, var) = row_norm(&mut y, &x, d, &gamma, &beta, eps);
        let mut dx = dy.clone();
        let (dgamma, dbeta) = row_norm_backward(&mut dx, &x, None, d, &gamma, &mean, &var, eps);
        let mut want_dgamma = vec![0.0; c];
        let mut want_dbeta = vec![0.0; c];
        for r in 0..rows {
            let row = &x[r * k..(r + 1) * k];
            let mu = row.iter().sum::<f64>() / k as f64;
            let v = row.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / k as f64;
            assert_all_close(&[mean[r], var[r]], &[mu, v], 1e-13);
            let rstd = 1.0 / (v + eps).sqrt();
            let channel = |j: usize| (r % groups) * cpg + j / s;
            // x̂, g = dy·γ, dx = r (g - mean(g) - x̂ mean(g x̂)).
            let xhat: Vec<f64> = row.iter().map(|x| (x - mu) * rstd).collect();
            let g: Vec<f64> = (0..k).map(|j| dy[r * k + j] * gamma[channel(j)]).collect();
            let mean_g = g.iter().sum::<f64>() / k as f64;
            let mean_gx = g.iter().zip(&xhat).map(|(g, x)| g * x).sum::<f64>() / k as f64;
            for j in 0..k {
                let i = r * k + j;
                let want_y = xhat[j] * gamma[channel(j)] + beta[channel(j)];
                let want_dx = rstd * (g[j] - mean_g - xhat[j] * mean_gx);
                assert_all_close(&[y[i], dx[i]], &[want_y, want_dx], 1e-12);
                want_dgamma[channel(j)] += dy[i] * xhat[j];
                want_dbeta[channel(j)] += dy[i];
            }
        }
        assert_all_close(&dgamma, &want_dgamma, 1e-12);
        assert_all_close(&dbeta, &want_dbeta, 1e-12);
        let mut out_of_place = vec![0.0; x.len()];
        row_norm_backward(
            &mut out_of_place,
            &x,
            Some(&dy),
            d,
            &gamma,
            &mean,
            &var,
            eps,
        );
        assert_eq!(out_of_place, dx);
    }
}

#[test]
fn channel_affine_over_several_shares_matches_the_formula() {
    // Several shares of 218 runs each (shares start mid-way through the channels' cycle),
    // out of place and in place.
    let d = ChannelDims {
        n: 300,
        c: 3,
        s: 300,
    };
    let x = data(d.n * d.c * d.s, 9, 3.0, 2.0);
    let (mean, scale, shift) = ([3.0, 2.5, -1.0], [0.5, 2.0, 1.5], [0.1, -0.2, 0.3]);
    let k = ChannelAffine::<f64>::new(&mean, &scale, &shift, None);
    let mut out = vec![0.0; x.len()];
    apply_channel_affine(&mut out, Some(&x), d, &k);
    let mut in_place = x.clone();
    apply_channel_affine(&mut in_place, None, d, &k);
    assert_eq!(out, in_place);
    for (i, (&y, &x)) in out.iter().zip(&x).enumerate() {
        let ch = (i / d.s) % d.c;
        assert_all_close(&[y], &[(x - mean[ch]) * scale[ch] + shift[ch]], 1e-14);
    }
}
