//! ROAD's noisy linear imputation (Rong et al., 2022, "A Consistent and Efficient Evaluation
//! Strategy for Attribution Methods"; pytorch-grad-cam's `NoisyLinearImputer`).
//!
//! Removed pixels are not set to a constant (which a model can read as a shape) but filled
//! with the weighted mean of their 8 neighbours, solved jointly for all removed pixels of a
//! channel: for removed pixel `i`, `D_i x_i - sum_{removed j} w_ij x_j = sum_{kept j} w_ij v_j`
//! with weights 1/6 for the 4 direct and 1/12 for the 4 diagonal neighbours, `D_i` the weight
//! of its neighbours inside the image. Then Gaussian noise of standard deviation `noise` is
//! added to each filled value. The system is symmetric positive definite whenever every group
//! of removed pixels touches a kept one, and is solved by conjugate gradients (Jacobi
//! preconditioned) to a relative residual of 1e-6, where pytorch-grad-cam calls a sparse
//! direct solver: the same solution, without a sparse-matrix library.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Neighbour offsets `(dy, dx)` and their weights.
const NEIGHBOURS: [((i32, i32), f64); 8] = [
    ((1, 1), 1.0 / 12.0),
    ((0, 1), 1.0 / 6.0),
    ((-1, 1), 1.0 / 12.0),
    ((1, -1), 1.0 / 12.0),
    ((0, -1), 1.0 / 6.0),
    ((-1, -1), 1.0 / 12.0),
    ((1, 0), 1.0 / 6.0),
    ((-1, 0), 1.0 / 6.0),
];

/// The noise ROAD adds to imputed values (in the units of the normalised input).
pub const NOISE: f64 = 0.01;

/// `image` (`[c, h, w]`, row-major) with the pixels where `removed` is true filled by noisy
/// linear imputation; `seed` draws the noise.
pub fn impute(
    image: &[f32],
    [c, h, w]: [usize; 3],
    removed: &[bool],
    noise: f64,
    seed: u64,
) -> Vec<f32> {
    assert_eq!(removed.len(), h * w, "one flag per pixel");
    let mut out = image.to_vec();
    let unknown: Vec<usize> = (0..h * w).filter(|&p| removed[p]).collect();
    if unknown.is_empty() {
        return out;
    }
    if unknown.len() == h * w {
        // Nothing to interpolate from: the mean of the normalised input, 0, plus noise.
        out.iter_mut().for_each(|v| *v = 0.0);
    }
    let mut index = vec![usize::MAX; h * w];
    for (u, &p) in unknown.iter().enumerate() {
        index[p] = u;
    }
    // Per unknown: its diagonal D_i, its unknown neighbours (index, weight), its known ones.
    let mut diagonal = vec![0.0f64; unknown.len()];
    let mut links: Vec<Vec<(usize, f64)>> = vec![Vec::new(); unknown.len()];
    let mut known: Vec<Vec<(usize, f64)>> = vec![Vec::new(); unknown.len()];
    for (u, &p) in unknown.iter().enumerate() {
        let (y, x) = ((p / w) as i32, (p % w) as i32);
        for ((dy, dx), weight) in NEIGHBOURS {
            let (ny, nx) = (y + dy, x + dx);
            if ny < 0 || nx < 0 || ny >= h as i32 || nx >= w as i32 {
                continue;
            }
            let q = ny as usize * w + nx as usize;
            diagonal[u] += weight;
            if removed[q] {
                links[u].push((index[q], weight))
            } else {
                known[u].push((q, weight))
            }
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // A standard normal draw by Box-Muller.
    let mut gaussian = move || {
        let (u, v): (f64, f64) = (
            rng.random_range(f64::EPSILON..1.0),
            rng.random_range(0.0..1.0),
        );
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    };
    for ch in 0..c {
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        let rhs: Vec<f64> = known
            .iter()
            .map(|ks| ks.iter().map(|&(q, wt)| wt * plane[q] as f64).sum())
            .collect();
        let solution = if unknown.len() == h * w {
            vec![0.0; unknown.len()]
        } else {
            solve(&diagonal, &links, &rhs)
        };
        for (u, &p) in unknown.iter().enumerate() {
            out[ch * h * w + p] = (solution[u] + noise * gaussian()) as f32;
        }
    }
    out
}

/// Solves `(D - W) x = b` by Jacobi-preconditioned conjugate gradients.
fn solve(diagonal: &[f64], links: &[Vec<(usize, f64)>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let apply = |x: &[f64], out: &mut [f64]| {
        for i in 0..n {
            out[i] = diagonal[i] * x[i] - links[i].iter().map(|&(j, w)| w * x[j]).sum::<f64>();
        }
    };
    let mut x: Vec<f64> = (0..n).map(|i| b[i] / diagonal[i]).collect();
    let mut ax = vec![0.0; n];
    apply(&x, &mut ax);
    let mut r: Vec<f64> = (0..n).map(|i| b[i] - ax[i]).collect();
    let mut z: Vec<f64> = (0..n).map(|i| r[i] / diagonal[i]).collect();
    let mut p = z.clone();
    let mut rz: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
    let norm_b = b.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-30);
    let mut ap = vec![0.0; n];
    for _ in 0..(4 * n).max(50) {
        if r.iter().map(|v| v * v).sum::<f64>().sqrt() <= 1e-6 * norm_b {
            break;
        }
        apply(&p, &mut ap);
        let pap: f64 = p.iter().zip(&ap).map(|(a, b)| a * b).sum();
        if pap <= 0.0 {
            break; // singular direction (a removed group touching no kept pixel)
        }
        let alpha = rz / pap;
        for i in 0..n {
            x[i] += alpha * p[i];
            r[i] -= alpha * ap[i];
            z[i] = r[i] / diagonal[i];
        }
        let rz_new: f64 = r.iter().zip(&z).map(|(a, b)| a * b).sum();
        let beta = rz_new / rz;
        rz = rz_new;
        for i in 0..n {
            p[i] = z[i] + beta * p[i];
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_pixel_is_the_weighted_mean_of_its_neighbours() {
        // 3x3, centre removed: (sum of direct / 6 + sum of diagonal / 12) / 1.
        let image: Vec<f32> = (0..9).map(|i| i as f32).collect();
        let mut removed = vec![false; 9];
        removed[4] = true;
        let out = impute(&image, [1, 3, 3], &removed, 0.0, 0);
        let expected = (1.0 + 3.0 + 5.0 + 7.0) / 6.0 + (0.0 + 2.0 + 6.0 + 8.0) / 12.0;
        assert!((out[4] as f64 - expected).abs() < 1e-6, "{}", out[4]);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn a_linear_ramp_is_filled_exactly() {
        // A plane is harmonic for this stencil away from the border: the removed block inside
        // a linear ramp is filled with the ramp.
        let (h, w) = (8, 8);
        let image: Vec<f32> = (0..h * w)
            .map(|p| (p % w) as f32 * 0.5 + (p / w) as f32)
            .collect();
        let removed: Vec<bool> = (0..h * w)
            .map(|p| (2..6).contains(&(p / w)) && (2..6).contains(&(p % w)))
            .collect();
        let out = impute(&image, [1, h, w], &removed, 0.0, 0);
        for p in 0..h * w {
            assert!(
                (out[p] - image[p]).abs() < 1e-4,
                "pixel {p}: {} vs {}",
                out[p],
                image[p]
            );
        }
    }
}
