//! Factorial analysis of crossed features: a linear model of per-seed accuracies with the main
//! effect of each feature level and the two-way interactions, each with a t interval.
//!
//! Coding: treatment (dummy) coding against each factor's base level (the plain CNN's: no
//! attention, no lateral connections, the plain conv), so a main effect is the feature's
//! effect on the base model, and the interaction of two features is what their combination
//! adds beyond the sum of the two main effects. The seed enters as a block (a dummy per seed
//! after the first): seed `s` of every model shares its data order, so seed-to-seed shifts
//! common to all models leave the residual. Terms the design cannot separate (a combination
//! never trained, or one aliased with others) are left out and listed.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// A factor of the design and its base level.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    /// Its name, e.g. `attention`.
    pub name: String,
    /// The level effects are measured against, e.g. `none`.
    pub base: String,
}

/// One run: its level of each factor (in the order of the factors), its block (seed) and the
/// measured value.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Level of each factor.
    pub levels: Vec<String>,
    /// The block it belongs to (the seed).
    pub block: String,
    /// The response, e.g. test accuracy in percent.
    pub value: f64,
}

/// One estimated effect.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Effect {
    /// `attention=attn2`, or `attention=attn2 × lateral=residual` for an interaction.
    pub term: String,
    /// Whether it is a two-way interaction.
    pub interaction: bool,
    /// The coefficient.
    pub estimate: f64,
    /// Its standard error (`None` without residual degrees of freedom).
    pub se: Option<f64>,
    /// The interval's ends.
    pub low: Option<f64>,
    /// High end.
    pub high: Option<f64>,
}

/// The fitted model.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FactorialFit {
    /// The base model's fitted value in the first block.
    pub intercept: f64,
    /// Main effects, then interactions.
    pub effects: Vec<Effect>,
    /// Observations.
    pub observations: usize,
    /// Estimated coefficients (intercept and blocks included).
    pub parameters: usize,
    /// Residual degrees of freedom.
    pub residual_df: usize,
    /// Residual standard deviation (`None` without residual degrees of freedom).
    pub residual_std: Option<f64>,
    /// Interval coverage.
    pub level: f64,
    /// Terms the design cannot estimate.
    pub not_estimable: Vec<String>,
}

/// A column of the design matrix.
struct Column {
    name: String,
    kind: Kind,
    values: Vec<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Intercept,
    Block,
    Main,
    Interaction,
}

/// Levels of factor `f` other than its base, in order of appearance.
fn levels(factor: &Factor, f: usize, observations: &[Observation]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for o in observations {
        let l = &o.levels[f];
        if *l != factor.base && !out.contains(l) {
            out.push(l.clone());
        }
    }
    out
}

/// Fits main effects and two-way interactions of `factors` to `observations` by least squares,
/// with `level` intervals (t with the residual degrees of freedom).
///
/// Errors (as text) when an observation has the wrong number of levels, or there are none.
pub fn fit(
    factors: &[Factor],
    observations: &[Observation],
    level: f64,
) -> Result<FactorialFit, String> {
    if observations.is_empty() {
        return Err("no observations".to_string());
    }
    if let Some(o) = observations
        .iter()
        .find(|o| o.levels.len() != factors.len())
    {
        return Err(format!(
            "an observation has {} levels for {} factors",
            o.levels.len(),
            factors.len()
        ));
    }
    let n = observations.len();
    let indicator = |f: usize, l: &str| -> Vec<f64> {
        observations
            .iter()
            .map(|o| if o.levels[f] == l { 1.0 } else { 0.0 })
            .collect()
    };
    let mut candidates = vec![Column {
        name: "intercept".into(),
        kind: Kind::Intercept,
        values: vec![1.0; n],
    }];
    let mut blocks: Vec<&str> = Vec::new();
    for o in observations {
        if !blocks.contains(&o.block.as_str()) {
            blocks.push(&o.block);
        }
    }
    for b in blocks.iter().skip(1) {
        let values = observations
            .iter()
            .map(|o| if o.block == *b { 1.0 } else { 0.0 })
            .collect();
        candidates.push(Column {
            name: format!("block={b}"),
            kind: Kind::Block,
            values,
        });
    }
    let all_levels: Vec<Vec<String>> = factors
        .iter()
        .enumerate()
        .map(|(f, x)| levels(x, f, observations))
        .collect();
    for (f, factor) in factors.iter().enumerate() {
        for l in &all_levels[f] {
            candidates.push(Column {
                name: format!("{}={l}", factor.name),
                kind: Kind::Main,
                values: indicator(f, l),
            });
        }
    }
    for f in 0..factors.len() {
        for g in f + 1..factors.len() {
            for lf in &all_levels[f] {
                for lg in &all_levels[g] {
                    let values: Vec<f64> = indicator(f, lf)
                        .iter()
                        .zip(indicator(g, lg))
                        .map(|(a, b)| a * b)
                        .collect();
                    let name = format!("{}={lf} × {}={lg}", factors[f].name, factors[g].name);
                    candidates.push(Column {
                        name,
                        kind: Kind::Interaction,
                        values,
                    });
                }
            }
        }
    }

    // Keep a column when it adds a direction the kept ones do not span (Gram-Schmidt).
    let mut basis: Vec<Vec<f64>> = Vec::new();
    let mut kept: Vec<Column> = Vec::new();
    let mut not_estimable = Vec::new();
    for column in candidates {
        let mut r = column.values.clone();
        for q in &basis {
            let dot: f64 = r.iter().zip(q).map(|(a, b)| a * b).sum();
            r.iter_mut().zip(q).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = r.iter().map(|x| x * x).sum::<f64>().sqrt();
        let scale = column.values.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-9 * scale.max(1.0) {
            basis.push(r.iter().map(|x| x / norm).collect());
            kept.push(column);
        } else if column.kind != Kind::Block {
            not_estimable.push(column.name);
        }
    }

    let p = kept.len();
    // Normal equations X'X beta = X'y, inverted by Gauss-Jordan (p is a few dozen at most, and
    // the kept columns are linearly independent).
    let mut xtx = vec![vec![0.0; p]; p];
    let mut xty = vec![0.0; p];
    for i in 0..p {
        for j in 0..p {
            xtx[i][j] = kept[i]
                .values
                .iter()
                .zip(&kept[j].values)
                .map(|(a, b)| a * b)
                .sum();
        }
        xty[i] = kept[i]
            .values
            .iter()
            .zip(observations)
            .map(|(a, o)| a * o.value)
            .sum();
    }
    let inverse = invert(xtx).ok_or("the design's normal equations are singular")?;
    let beta: Vec<f64> = (0..p)
        .map(|i| (0..p).map(|j| inverse[i][j] * xty[j]).sum())
        .collect();
    let rss: f64 = observations
        .iter()
        .enumerate()
        .map(|(r, o)| {
            let fitted: f64 = kept.iter().zip(&beta).map(|(c, b)| c.values[r] * b).sum();
            (o.value - fitted).powi(2)
        })
        .sum();
    let residual_df = n - p;
    let sigma2 = (residual_df > 0).then(|| rss / residual_df as f64);
    let t = sigma2.map(|_| {
        StudentsT::new(0.0, 1.0, residual_df as f64)
            .expect("df > 0 is valid")
            .inverse_cdf(0.5 + level / 2.0)
    });
    let mut effects = Vec::new();
    for kind in [Kind::Main, Kind::Interaction] {
        for (i, c) in kept.iter().enumerate().filter(|(_, c)| c.kind == kind) {
            let se = sigma2.map(|s2| (s2 * inverse[i][i]).sqrt());
            let half = se.zip(t).map(|(se, t)| se * t);
            effects.push(Effect {
                term: c.name.clone(),
                interaction: kind == Kind::Interaction,
                estimate: beta[i],
                se,
                low: half.map(|h| beta[i] - h),
                high: half.map(|h| beta[i] + h),
            });
        }
    }
    Ok(FactorialFit {
        intercept: beta[0],
        effects,
        observations: n,
        parameters: p,
        residual_df,
        residual_std: sigma2.map(f64::sqrt),
        level,
        not_estimable,
    })
}

/// The inverse of a square matrix by Gauss-Jordan elimination with partial pivoting; `None`
/// if it is singular.
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        a[col].iter_mut().for_each(|x| *x /= d);
        inv[col].iter_mut().for_each(|x| *x /= d);
        for row in 0..n {
            if row != col {
                let f = a[row][col];
                if f != 0.0 {
                    for k in 0..n {
                        a[row][k] -= f * a[col][k];
                        inv[row][k] -= f * inv[col][k];
                    }
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(a: &str, b: &str, seed: u64, value: f64) -> Observation {
        Observation {
            levels: vec![a.into(), b.into()],
            block: seed.to_string(),
            value,
        }
    }

    fn two_factors() -> Vec<Factor> {
        vec![
            Factor {
                name: "a".into(),
                base: "no".into(),
            },
            Factor {
                name: "b".into(),
                base: "no".into(),
            },
        ]
    }

    // A 2 x 2 design, 3 seeds as blocks: statsmodels OLS with columns
    // [1, a, b, a*b, seed==1, seed==2] (scripts/stats_known_values.py), params and
    // conf_int(0.05).
    #[test]
    fn matches_statsmodels_ols() {
        let y = [
            70.1, 70.9, 69.8, 71.0, 71.6, 70.7, 69.5, 70.2, 69.9, 71.9, 72.8, 71.5,
        ];
        let cells = [("no", "no"), ("yes", "no"), ("no", "yes"), ("yes", "yes")];
        let observations: Vec<Observation> = (0..12)
            .map(|i| obs(cells[i / 3].0, cells[i / 3].1, (i % 3) as u64, y[i]))
            .collect();
        let fit = fit(&two_factors(), &observations, 0.95).unwrap();
        assert_eq!((fit.parameters, fit.residual_df), (6, 6));
        assert!((fit.intercept - 70.06666666666675).abs() < 1e-9);
        let want = [
            (
                "a=yes",
                0.8333333333333677,
                0.3577391568349235,
                1.3089275098318118,
            ),
            (
                "b=yes",
                -0.3999999999999676,
                -0.8755941764984116,
                0.07559417649847644,
            ),
            (
                "a=yes × b=yes",
                1.3666666666666494,
                0.6940749320768862,
                2.0392584012564123,
            ),
        ];
        assert_eq!(fit.effects.len(), 3);
        for (e, (term, est, low, high)) in fit.effects.iter().zip(want) {
            assert_eq!(e.term, term);
            assert!((e.estimate - est).abs() < 1e-9, "{term}");
            assert!(
                (e.low.unwrap() - low).abs() < 1e-9 && (e.high.unwrap() - high).abs() < 1e-9,
                "{term}"
            );
        }
        assert!(fit.effects[2].interaction && !fit.effects[0].interaction);
        assert!(fit.not_estimable.is_empty());
    }

    #[test]
    fn an_untrained_combination_is_not_estimable() {
        // No (yes, yes) cell: the interaction cannot be separated.
        let observations = vec![
            obs("no", "no", 0, 70.0),
            obs("yes", "no", 0, 71.0),
            obs("no", "yes", 0, 69.0),
            obs("no", "no", 1, 70.4),
            obs("yes", "no", 1, 71.2),
            obs("no", "yes", 1, 69.6),
        ];
        let fit = fit(&two_factors(), &observations, 0.95).unwrap();
        assert_eq!(fit.not_estimable, vec!["a=yes × b=yes".to_string()]);
        assert_eq!(fit.effects.len(), 2);
        assert_eq!(fit.residual_df, 2);
    }

    #[test]
    fn no_residual_df_gives_estimates_without_intervals() {
        let observations = vec![obs("no", "no", 0, 70.0), obs("yes", "no", 0, 71.5)];
        let fit = fit(&two_factors(), &observations, 0.95).unwrap();
        assert_eq!(fit.residual_df, 0);
        assert!((fit.effects[0].estimate - 1.5).abs() < 1e-12);
        assert!(fit.effects[0].low.is_none() && fit.residual_std.is_none());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(fit(&two_factors(), &[], 0.95).is_err());
        let wrong = Observation {
            levels: vec!["no".into()],
            block: "0".into(),
            value: 1.0,
        };
        assert!(
            fit(&two_factors(), &[wrong], 0.95)
                .unwrap_err()
                .contains("1 levels for 2 factors")
        );
    }
}
