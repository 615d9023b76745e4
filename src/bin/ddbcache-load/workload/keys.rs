//! Key popularity: [`KeyPicker`] draws indexes in `0..n`, uniformly or Zipf-distributed
//! (index 0 the most popular), in O(1) time and memory with the rejection-inversion method of
//! Hörmann and Derflinger ("Rejection-inversion to generate variates from monotone discrete
//! distributions", 1996), as in Apache Commons RNG's `RejectionInversionZipfSampler`.

/// A Zipf sampler over ranks `1..=n` with exponent `s > 0`.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    exponent: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    s: f64,
}

impl Zipf {
    pub fn new(n: u64, exponent: f64) -> Self {
        assert!(
            n >= 1 && exponent > 0.0,
            "Zipf needs n >= 1 and exponent > 0"
        );
        let mut z = Zipf {
            n: n as f64,
            exponent,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            s: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(z.n + 0.5);
        z.s = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`, given a source of uniform numbers in `[0, 1)`.
    pub fn sample(&self, mut uniform: impl FnMut() -> f64) -> u64 {
        let mut k = 1.0;
        // Accepts with high probability (> 0.5 for any exponent); the cap keeps it bounded.
        for _ in 0..64 {
            let u = self.h_integral_n + uniform() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.s || u >= self.h_integral(k + 0.5) - self.h(k) {
                break;
            }
        }
        k as u64
    }

    fn h(&self, x: f64) -> f64 {
        (-self.exponent * x.ln()).exp()
    }

    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.exponent) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.exponent)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// Draws key indexes in `0..n`; each virtual user owns one (its own random stream).
#[derive(Debug, Clone)]
pub struct KeyPicker {
    n: u64,
    zipf: Option<Zipf>,
    rng: fastrand::Rng,
}

impl KeyPicker {
    /// `exponent` 0 is uniform.
    pub fn new(n: u64, exponent: f64, seed: u64) -> Self {
        KeyPicker {
            n,
            zipf: (exponent > 0.0).then(|| Zipf::new(n, exponent)),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    pub fn pick(&mut self) -> u64 {
        match &self.zipf {
            Some(z) => {
                let rng = &mut self.rng;
                z.sample(|| rng.f64()) - 1
            }
            None => self.rng.u64(0..self.n),
        }
    }

    /// The picker's random stream, for other choices of the same virtual user.
    pub fn rng(&mut self) -> &mut fastrand::Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(picker: &mut KeyPicker, n: usize, draws: usize) -> Vec<f64> {
        let mut counts = vec![0usize; n];
        for _ in 0..draws {
            counts[picker.pick() as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / draws as f64).collect()
    }

    #[test]
    fn zipf_matches_its_probability_mass() {
        for exponent in [0.5, 0.99, 1.0, 1.2] {
            let n = 100;
            let harmonic: f64 = (1..=n).map(|k| 1.0 / (k as f64).powf(exponent)).sum();
            let freq = histogram(&mut KeyPicker::new(n, exponent, 7), n as usize, 400_000);
            for k in [1u64, 2, 3, 10, 50] {
                let expected = 1.0 / (k as f64).powf(exponent) / harmonic;
                let got = freq[k as usize - 1];
                assert!(
                    (got - expected).abs() < 0.1 * expected + 0.001,
                    "s={exponent} rank {k}: expected {expected:.4}, got {got:.4}"
                );
            }
        }
    }

    #[test]
    fn zipf_stays_in_range() {
        for n in [1u64, 2, 5, 1_000_000_000] {
            let mut p = KeyPicker::new(n, 1.1, 3);
            for _ in 0..10_000 {
                assert!(p.pick() < n);
            }
        }
    }

    #[test]
    fn uniform_is_flat() {
        let freq = histogram(&mut KeyPicker::new(10, 0.0, 1), 10, 200_000);
        for f in freq {
            assert!((f - 0.1).abs() < 0.01, "{f}");
        }
    }

    #[test]
    fn same_seed_same_keys() {
        let a: Vec<u64> = {
            let mut p = KeyPicker::new(1000, 0.9, 5);
            (0..100).map(|_| p.pick()).collect()
        };
        let b: Vec<u64> = {
            let mut p = KeyPicker::new(1000, 0.9, 5);
            (0..100).map(|_| p.pick()).collect()
        };
        assert_eq!(a, b);
    }
}
