//! Seeded, stratified splits: a validation set carved from train, or a smaller training subset.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Splits the indices `0..labels.len()` into `(rest, taken)`, where `taken` holds `take` indices
/// drawn so that every class keeps its share (largest-remainder rounding), and both lists are
/// sorted. The same `seed` always gives the same split.
pub fn stratified_split(
    labels: &[u16],
    num_classes: usize,
    take: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let take = take.min(labels.len());
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    // Quotas proportional to class sizes; the remainders go to the largest fractional parts.
    let total = labels.len().max(1);
    let exact: Vec<f64> = by_class
        .iter()
        .map(|c| c.len() as f64 * take as f64 / total as f64)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.partial_cmp(&fa).unwrap().then(a.cmp(&b))
    });
    let mut missing = take - quota.iter().sum::<usize>();
    for &c in order.iter().cycle().take(num_classes * 2) {
        if missing == 0 {
            break;
        }
        if quota[c] < by_class[c].len() {
            quota[c] += 1;
            missing -= 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rest = Vec::with_capacity(labels.len() - take);
    let mut taken = Vec::with_capacity(take);
    for (class, mut indices) in by_class.into_iter().enumerate() {
        indices.shuffle(&mut rng);
        taken.extend_from_slice(&indices[..quota[class]]);
        rest.extend_from_slice(&indices[quota[class]..]);
    }
    rest.sort_unstable();
    taken.sort_unstable();
    (rest, taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_class_shares_and_is_seeded() {
        // 3 classes of 100, 50 and 10 images.
        let labels: Vec<u16> = (0..160)
            .map(|i| {
                if i < 100 {
                    0
                } else if i < 150 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let (rest, taken) = stratified_split(&labels, 3, 32, 7);
        assert_eq!(taken.len(), 32);
        assert_eq!(rest.len(), 128);
        let count = |idx: &[usize], c: u16| idx.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!(count(&taken, 0), 20);
        assert_eq!(count(&taken, 1), 10);
        assert_eq!(count(&taken, 2), 2);
        let mut all: Vec<usize> = rest.iter().chain(&taken).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..160).collect::<Vec<_>>());
        assert_eq!(
            stratified_split(&labels, 3, 32, 7),
            (rest.clone(), taken.clone())
        );
        assert_ne!(stratified_split(&labels, 3, 32, 8).1, taken);
    }

    #[test]
    fn rounds_to_the_exact_count() {
        let labels: Vec<u16> = (0..30).map(|i| (i % 3) as u16).collect();
        for take in 0..=30 {
            let (rest, taken) = stratified_split(&labels, 3, take, 1);
            assert_eq!(taken.len(), take);
            assert_eq!(rest.len(), 30 - take);
        }
    }
}
