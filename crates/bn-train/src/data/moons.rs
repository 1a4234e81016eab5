//! scikit-learn's `make_moons`, point for point: two interleaving half circles with Gaussian
//! noise, generated with the same random stream as `sklearn.datasets.make_moons(n, noise=...,
//! random_state=seed)`, so the PyTorch experiment (`scripts/moons.py`) sees the same 1,000 points here.
//!
//! scikit-learn draws from NumPy's legacy `RandomState`: the MT19937 generator seeded with
//! `init_genrand(seed)`, a Fisher–Yates shuffle with masked rejection sampling, then normal
//! noise from the polar Box–Muller method. [`NumpyRandomState`] is that, and nothing more.

use std::f64::consts::PI;

/// The points and labels of a two-class 2-D data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Moons {
    /// `[x, y]` per point.
    pub points: Vec<[f64; 2]>,
    /// 0 for the upper (outer) moon, 1 for the lower (inner) one.
    pub labels: Vec<u8>,
}

/// `sklearn.datasets.make_moons(n_samples, shuffle=True, noise=noise, random_state=seed)`.
pub fn make_moons(n_samples: usize, noise: f64, seed: u32) -> Moons {
    let n_out = n_samples / 2;
    let n_in = n_samples - n_out;
    let mut points = Vec::with_capacity(n_samples);
    points.extend(linspace_pi(n_out).map(|t| [t.cos(), t.sin()]));
    points.extend(linspace_pi(n_in).map(|t| [1.0 - t.cos(), 1.0 - t.sin() - 0.5]));
    let mut labels = vec![0u8; n_out];
    labels.extend(std::iter::repeat_n(1u8, n_in));

    let mut rng = NumpyRandomState::new(seed);
    let mut order: Vec<usize> = (0..n_samples).collect();
    rng.shuffle(&mut order);
    let mut moons = Moons {
        points: order.iter().map(|&i| points[i]).collect(),
        labels: order.iter().map(|&i| labels[i]).collect(),
    };
    for point in &mut moons.points {
        for coordinate in point.iter_mut() {
            *coordinate += noise * rng.gauss();
        }
    }
    moons
}

/// `np.linspace(0, pi, n)`.
fn linspace_pi(n: usize) -> impl Iterator<Item = f64> {
    let step = if n > 1 { PI / (n - 1) as f64 } else { 0.0 };
    (0..n).map(move |i| i as f64 * step)
}

/// NumPy's `RandomState(seed)`: MT19937 and the legacy sampling routines built on it.
#[derive(Debug, Clone)]
pub struct NumpyRandomState {
    state: [u32; 624],
    index: usize,
    cached_gauss: Option<f64>,
}

impl NumpyRandomState {
    /// `np.random.RandomState(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Self {
            state,
            index: 624,
            cached_gauss: None,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// A double in `[0, 1)` from 53 random bits.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }

    /// A uniform integer in `[0, max]` by masked rejection (`random_interval`).
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mask = u32::MAX >> max.leading_zeros();
        loop {
            let value = self.next_u32() & mask;
            if value <= max {
                return value;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-D array: Fisher–Yates from the back.
    pub fn shuffle<T>(&mut self, values: &mut [T]) {
        for i in (1..values.len()).rev() {
            let j = self.interval(i as u32) as usize;
            values.swap(i, j);
        }
    }

    /// A standard normal sample by the polar method; every second call uses the cached value.
    fn gauss(&mut self) -> f64 {
        if let Some(value) = self.cached_gauss.take() {
            return value;
        }
        loop {
            let x1 = 2.0 * self.next_f64() - 1.0;
            let x2 = 2.0 * self.next_f64() - 1.0;
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 != 0.0 {
                let f = (-2.0 * r2.ln() / r2).sqrt();
                self.cached_gauss = Some(f * x1);
                return f * x2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_and_labels_are_scikit_learns() {
        // scikit-learn 1.9.1: `X, y = make_moons(1000, noise=0.1, random_state=42)`, printed
        // as `X[[0, 1, 2, 500, 999]]` and `y[[...]]`. The first three also open
        // docs/pytorch/moons.out.
        let moons = make_moons(1000, 0.1, 42);
        let want = [
            (0, [-0.05146968, 0.44419863], 1),
            (1, [1.03201691, -0.41974116], 1),
            (2, [0.86789186, -0.25482711], 1),
            (500, [0.28914431, -0.42188024], 1),
            (999, [0.78758971, 0.61660945], 0),
        ];
        for (i, point, label) in want {
            let got = moons.points[i];
            assert!(
                (got[0] - point[0]).abs() < 1e-8 && (got[1] - point[1]).abs() < 1e-8,
                "point {i}: got {got:?}, want {point:?}"
            );
            assert_eq!(moons.labels[i], label, "label {i}");
        }
    }

    #[test]
    fn classes_are_balanced_and_noise_free_points_lie_on_the_moons() {
        let moons = make_moons(1001, 0.0, 7);
        assert_eq!(moons.labels.iter().filter(|&&l| l == 0).count(), 500);
        assert_eq!(moons.labels.iter().filter(|&&l| l == 1).count(), 501);
        for (p, &label) in moons.points.iter().zip(&moons.labels) {
            // Outer moon: the unit circle; inner moon: the unit circle around (1, 0.5).
            let (cx, cy) = if label == 0 { (0.0, 0.0) } else { (1.0, 0.5) };
            let r = ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt();
            assert!((r - 1.0).abs() < 1e-12, "{p:?} label {label}");
        }
    }

    #[test]
    fn mt19937_matches_the_reference_stream() {
        // The reference implementation's first output for init_genrand(5489) is 3499211612.
        let mut rng = NumpyRandomState::new(5489);
        assert_eq!(rng.next_u32(), 3_499_211_612);
    }
}
