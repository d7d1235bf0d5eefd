//! The report's statistics against known values: McNemar's test on textbook tables, and the
//! paired bootstrap on synthetic outcomes with a known accuracy difference.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use visionnet::stats::{discordant, mcnemar, mean_std, paired_bootstrap};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn mcnemar_matches_textbook_examples() {
    // Agresti, An Introduction to Categorical Data Analysis, approval of the Prime Minister in two
    // surveys of the same 1,600 people: 150 approve then disapprove, 86 the reverse. McNemar's
    // z = (150 - 86) / sqrt(236) = 4.17, so chi-square = 17.36 and p < 0.0001.
    let t = mcnemar(150, 86);
    assert!(close(t.chi2, 17.356, 1e-3), "{t:?}");
    assert!(close(t.chi2.sqrt(), 4.17, 5e-3));
    assert!(!t.exact && t.p_value < 1e-4, "{t:?}");

    // Wikipedia's McNemar example (before/after treatment, 314 patients): b = 121, c = 59,
    // chi-square 21.35; with Edwards' correction (|121 - 59| - 1)^2 / 180 = 20.67.
    let t = mcnemar(121, 59);
    assert!(close(t.chi2, 21.356, 1e-3), "{t:?}");
    assert!(close(t.chi2_corrected, 61.0 * 61.0 / 180.0, 1e-9), "{t:?}");

    // mlxtend's documented examples (Raschka), comparing two classifiers on the same test set.
    // [[9945, 25], [15, 15]]: corrected chi-square 2.025, p = 0.154728923485.
    let t = mcnemar(25, 15);
    assert!(close(t.chi2_corrected, 2.025, 1e-9), "{t:?}");
    assert!(close(t.p_value, 0.154728923485, 1e-9), "{t:?}");
    assert!(!t.exact);
    // [[9959, 11], [1, 29]]: b + c = 12 < 25, so the exact binomial test:
    // p = 2 * P(X <= 1 | n = 12, 1/2) = 2 * 13 / 4096 = 0.00634765625.
    let t = mcnemar(11, 1);
    assert!(t.exact);
    assert!(close(t.p_value, 26.0 / 4096.0, 1e-12), "{t:?}");
    // Symmetric in direction; p capped at 1 when b = c; no discordant pairs: no evidence.
    assert_eq!(mcnemar(1, 11).p_value, t.p_value);
    assert_eq!(mcnemar(7, 7).p_value, 1.0);
    assert_eq!(mcnemar(0, 0).p_value, 1.0);
    // Exact for b = 1, c = 6: 2 * (1 + 7) / 128 = 0.125.
    assert!(close(mcnemar(1, 6).p_value, 0.125, 1e-12));
}

#[test]
fn discordant_counts_each_direction() {
    let a = [true, true, false, false, true];
    let b = [true, false, true, false, false];
    assert_eq!(discordant(&a, &b), (2, 1));
}

/// `seeds` runs of two models on `n` images: the first right with probability `pa`, the
/// second with `pb`, independently.
fn independent(
    seeds: usize,
    n: usize,
    pa: f64,
    pb: f64,
    seed: u64,
) -> (Vec<Vec<bool>>, Vec<Vec<bool>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |p: f64| (0..n).map(|_| rng.random::<f64>() < p).collect::<Vec<_>>();
    let a = (0..seeds).map(|_| draw(pa)).collect();
    let b = (0..seeds).map(|_| draw(pb)).collect();
    (a, b)
}

#[test]
fn bootstrap_finds_a_known_difference_with_the_analytic_width() {
    // One seed, 20,000 images, 80% against 70% correct, independent: the difference is 0.10 and
    // its standard error sqrt(Var(d) / n) with Var(d) = P(a != b) - 0.1^2 = 0.38 - 0.01.
    let (a, b) = independent(1, 20_000, 0.80, 0.70, 1);
    let ci = paired_bootstrap(&a, &b, 2000, 0.95, 7);
    let observed = (a[0].iter().filter(|&&x| x).count() as f64
        - b[0].iter().filter(|&&x| x).count() as f64)
        / 20_000.0;
    assert!(close(ci.difference, observed, 1e-12));
    assert!(ci.low < 0.10 && 0.10 < ci.high, "{ci:?}");
    assert!(
        ci.low > 0.0,
        "a 10-point difference on 20,000 images is clear: {ci:?}"
    );
    let se = (0.37f64 / 20_000.0).sqrt();
    let width = ci.high - ci.low;
    assert!(
        close(width, 2.0 * 1.96 * se, 0.1 * 2.0 * 1.96 * se),
        "width {width}, analytic {}",
        2.0 * 1.96 * se
    );
    assert_eq!(ci.replicates, 2000);
}

#[test]
fn the_bootstrap_p_value_claims_no_more_than_its_replicates_resolve() {
    // 10 points apart on 20,000 images: no replicate reaches 0, so p is the floor 2 / (R + 1),
    // not 0 (which a table would print as "< 1e-16").
    let (a, b) = independent(1, 20_000, 0.80, 0.70, 1);
    let ci = paired_bootstrap(&a, &b, 999, 0.95, 7);
    assert!(close(ci.p_value, 2.0 / 1000.0, 1e-15), "{ci:?}");
    // No difference at all: every replicate is 0, on both sides, so p = 1.
    let ci = paired_bootstrap(&a, &a, 999, 0.95, 7);
    assert_eq!(ci.p_value, 1.0);
    // A small difference: p = 2 (1 + k) / (R + 1) with k the replicates at or beyond 0.
    let (a, b) = independent(2, 2_000, 0.71, 0.70, 3);
    let ci = paired_bootstrap(&a, &b, 999, 0.95, 11);
    let k = (ci.p_value * 1000.0 / 2.0).round() - 1.0;
    assert!(
        k >= 1.0 && close(ci.p_value, 2.0 * (1.0 + k) / 1000.0, 1e-12),
        "{ci:?}"
    );
    // Away from the edge, the 95% interval holds 0 exactly when p is above 0.05.
    if (ci.p_value - 0.05).abs() > 0.01 {
        assert_eq!(ci.low <= 0.0 && 0.0 <= ci.high, ci.p_value > 0.05, "{ci:?}");
    }
}

#[test]
fn bootstrap_over_seeds_and_images_covers_the_truth_and_zero_when_there_is_no_difference() {
    // Four seeds, 5,000 images each, 75% against 70%.
    let (a, b) = independent(4, 5000, 0.75, 0.70, 2);
    let ci = paired_bootstrap(&a, &b, 2000, 0.95, 3);
    assert!(ci.low < 0.05 && 0.05 < ci.high && ci.low > 0.0, "{ci:?}");
    // The same models: the interval straddles 0.
    let (a, b) = independent(4, 5000, 0.72, 0.72, 4);
    let ci = paired_bootstrap(&a, &b, 2000, 0.95, 5);
    assert!(ci.low < 0.0 && 0.0 < ci.high, "{ci:?}");
    // Deterministic in its seed; a different seed draws differently.
    assert_eq!(
        paired_bootstrap(&a, &b, 500, 0.95, 9),
        paired_bootstrap(&a, &b, 500, 0.95, 9)
    );
    assert_ne!(
        paired_bootstrap(&a, &b, 500, 0.95, 9).low,
        paired_bootstrap(&a, &b, 500, 0.95, 10).low
    );
}

#[test]
fn pairing_narrows_the_interval_when_the_models_agree_on_most_images() {
    // The second model equals the first except on 4% of the images, where it is wrong and the
    // first right: the difference is exactly 0.04 and, paired, known almost without noise.
    let (a, _) = independent(2, 10_000, 0.8, 0.8, 6);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let b: Vec<Vec<bool>> = a
        .iter()
        .map(|run| {
            let mut run = run.clone();
            let right: Vec<usize> = (0..run.len()).filter(|&i| run[i]).collect();
            let mut flipped = 0;
            while flipped < 400 {
                let i = right[rng.random_range(0..right.len())];
                if run[i] {
                    run[i] = false;
                    flipped += 1;
                }
            }
            run
        })
        .collect();
    let ci = paired_bootstrap(&a, &b, 2000, 0.95, 1);
    assert!(close(ci.difference, 0.04, 1e-12), "{ci:?}");
    assert!(ci.low > 0.03 && ci.high < 0.05, "{ci:?}");
    // Unpaired, two 80% classifiers 4 points apart on 10,000 images have a standard error of
    // about sqrt(2 * 0.8 * 0.2 / 10,000) = 0.0057 per seed: the paired interval is far narrower.
    assert!(
        ci.high - ci.low < 0.5 * 2.0 * 1.96 * (2.0f64 * 0.8 * 0.2 / 20_000.0).sqrt(),
        "{ci:?}"
    );
}

#[test]
fn mean_and_sample_std_over_seeds() {
    let m = mean_std(&[71.0, 73.0, 72.0]).unwrap();
    assert!(close(m.mean, 72.0, 1e-12));
    assert!(close(m.std, 1.0, 1e-12));
    assert_eq!(m.n, 3);
}
