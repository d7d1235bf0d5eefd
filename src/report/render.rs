//! The report as Markdown (tables, figures linked as PNG files) and as one self-contained HTML
//! page (figures inlined as SVG, no external references).

use std::fmt::Write;

use super::analysis::{Analysis, Comparison, CostRow, Factorial};
use super::runs::Collection;
use crate::stats::{MeanStd, p_cell};

/// `71.28 ± 0.45 (n=3)`.
pub fn cell(ms: &MeanStd) -> String {
    if ms.n > 1 {
        format!("{:.2} ± {:.2} (n={})", ms.mean, ms.std, ms.n)
    } else {
        format!("{:.2} (n=1)", ms.mean)
    }
}

/// `+1.23` in percentage points from a fraction.
fn pp(x: f64) -> String {
    format!("{:+.2}", 100.0 * x)
}

/// `1.08 M`, `31.5 M`, `4.1 G`.
fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// What the interval says (the rule: [`crate::stats::multiplicity::Verdict::of_interval`]).
pub fn verdict(c: &Comparison) -> &'static str {
    c.verdict.as_str()
}

/// The accuracy table: header and rows of plain cells (the best mean per dataset marked).
pub fn accuracy_rows(a: &Analysis) -> (Vec<String>, Vec<Vec<(String, bool)>>) {
    let mut header = vec![
        "Model".to_string(),
        "Recipe".to_string(),
        "Epochs".to_string(),
    ];
    header.extend(a.datasets.iter().cloned());
    let best: Vec<Option<f64>> = (0..a.datasets.len())
        .map(|d| {
            a.accuracy
                .iter()
                .filter_map(|r| r.cells[d].map(|c| c.mean))
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        })
        .collect();
    let rows = a
        .accuracy
        .iter()
        .map(|r| {
            let mut row = vec![
                (r.model.clone(), false),
                (r.recipe.clone(), false),
                (
                    r.epochs.map_or("mixed".to_string(), |e| e.to_string()),
                    false,
                ),
            ];
            for (d, c) in r.cells.iter().enumerate() {
                let unfinished = r.unfinished[d];
                let mut text = c.as_ref().map_or("—".to_string(), cell);
                if unfinished > 0 {
                    text.push_str(&format!(" +{unfinished} running"));
                }
                let is_best = c.is_some_and(|c| a.accuracy.len() > 1 && Some(c.mean) == best[d]);
                row.push((text, is_best));
            }
            row
        })
        .collect();
    (header, rows)
}

fn comparison_header(a: &Analysis) -> Vec<String> {
    let ci = format!("{:.0}% CI (pp)", 100.0 * a.level);
    [
        "Model",
        "Twin",
        "Dataset",
        "Recipe",
        "Twin kind",
        "Seeds",
        "Model %",
        "Twin %",
        "Δ (pp)",
        ci.as_str(),
        "Seed test p",
        "b",
        "c",
        "Seeds won",
        "Holm p",
        "Holm verdict",
        "Verdict",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn comparison_row(c: &Comparison) -> Vec<String> {
    vec![
        c.model.clone(),
        c.twin.clone(),
        c.dataset.clone(),
        c.recipe.clone(),
        c.twin_kind.clone(),
        c.seeds.len().to_string(),
        format!("{:.2}", c.model_accuracy),
        format!("{:.2}", c.twin_accuracy),
        pp(c.difference.difference),
        format!("[{}, {}]", pp(c.difference.low), pp(c.difference.high)),
        format!(
            "{} (min {})",
            p_cell(c.seed_test.p_value),
            p_cell(c.seed_test.min_p_value)
        ),
        c.discordant.b.to_string(),
        c.discordant.c.to_string(),
        format!("{}/{}", c.seeds_won, c.seeds.len()),
        p_cell(c.holm_p),
        c.holm_verdict.as_str().to_string(),
        verdict(c).to_string(),
    ]
}

fn worth_header() -> Vec<String> {
    [
        "Model",
        "Twin",
        "Dataset",
        "Recipe",
        "Seed std model / twin (pp)",
        "Test-set SE (pp)",
        "Dominant",
        "Δ std over seeds (pp)",
        "Detectable now (pp)",
        "Seeds for 0.5 pp",
        "Seeds for 1.0 pp",
        "Test-set floor (pp)",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn worth_row(c: &Comparison) -> Vec<String> {
    let opt = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.2}"));
    let [m, t] = &c.variance;
    let needed = |i: usize| match (&c.power.note, c.power.needed.get(i)) {
        (Some(_), _) | (_, None) => "—".to_string(),
        (None, Some((_, Some(n)))) => n.to_string(),
        (None, Some((_, None))) => format!("> {}", crate::stats::power::MAX_SEEDS),
    };
    let dominant = match (m.dominant, t.dominant) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a} / {b}"),
        _ => "needs 2 seeds".to_string(),
    };
    vec![
        c.model.clone(),
        c.twin.clone(),
        c.dataset.clone(),
        c.recipe.clone(),
        format!("{} / {}", opt(m.seed_std), opt(t.seed_std)),
        format!("{:.2} / {:.2}", m.binomial_se, t.binomial_se),
        dominant,
        opt(c.power.diff_std),
        c.power.detectable.map_or_else(
            || c.power.note.clone().unwrap_or_else(|| "—".into()),
            |d| format!("{d:.2}"),
        ),
        needed(0),
        needed(1),
        format!("{:.2}", c.power.test_set_floor),
    ]
}

fn worth_note(a: &Analysis) -> String {
    let _ = a;
    "Seed std: the sample standard deviation of test accuracy over seeds; test-set SE: the binomial \
     standard error sqrt(p (1 - p) / N) of one run's accuracy on the N test images; dominant: the larger. \
     Power is that of the two-sided paired t-test over seeds (α = 0.05, 80% power, exact noncentral t) with \
     the measured standard deviation of the per-seed differences Δ; 'detectable now' is the smallest true \
     difference the seeds at hand detect. The test set is the same for every seed, so its own sampling error \
     does not shrink with seeds: the floor is the difference no number of seeds detects at that power \
     ((z_0.975 + z_0.8) times the paired standard error of one run's Δ on N images)."
        .to_string()
}

fn factorial_header() -> Vec<String> {
    ["Term", "Kind", "Effect (pp)", "95% CI (pp)"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn factorial_rows(f: &Factorial) -> Vec<Vec<String>> {
    f.fit
        .effects
        .iter()
        .map(|e| {
            let ci = match (e.low, e.high) {
                (Some(l), Some(h)) => format!("[{l:+.2}, {h:+.2}]"),
                _ => "— (no residual df)".to_string(),
            };
            vec![
                e.term.clone(),
                if e.interaction {
                    "interaction".into()
                } else {
                    "main".into()
                },
                format!("{:+.2}", e.estimate),
                ci,
            ]
        })
        .collect()
}

fn factorial_note(f: &Factorial) -> String {
    let mut s = format!(
        "{} / {}: linear model of per-seed test accuracy (%) on {} runs of {} models; treatment coding against {}; \
         seed as a block; {} parameters, {} residual df, 95% t intervals. A main effect is the feature's effect on \
         the plain CNN; an interaction is what two features add together beyond their main effects.",
        f.dataset,
        f.recipe,
        f.fit.observations,
        f.models.len(),
        f.factors
            .iter()
            .map(|(n, b)| format!("{n} = {b}"))
            .collect::<Vec<_>>()
            .join(", "),
        f.fit.parameters,
        f.fit.residual_df
    );
    if !f.fit.not_estimable.is_empty() {
        s.push_str(&format!(
            " Not estimable (combination not trained): {}.",
            f.fit.not_estimable.join(", ")
        ));
    }
    if !f.left_out.is_empty() {
        s.push_str(&format!(
            " Left out (other widths or options): {}.",
            f.left_out.join(", ")
        ));
    }
    s
}

fn cost_header() -> Vec<String> {
    [
        "Model",
        "Recipe",
        "Dataset",
        "Parameters",
        "FLOPs/image",
        "s/epoch",
        "train images/s",
        "train images",
        "runs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn cost_row(c: &CostRow) -> Vec<String> {
    vec![
        c.model.clone(),
        c.recipe.clone(),
        c.dataset.clone(),
        c.params
            .map_or("n/a".to_string(), |p| format!("{} ({})", si(p as f64), p)),
        c.flops.map_or("n/a".to_string(), |f| si(f as f64)),
        c.seconds_per_epoch
            .map_or("—".to_string(), |s| format!("{s:.1}")),
        c.images_per_second
            .map_or("—".to_string(), |x| format!("{x:.0}")),
        c.train_images.to_string(),
        c.runs.to_string(),
    ]
}

/// Rows of the runs table.
fn run_rows(c: &Collection) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "Run",
        "Seed",
        "Epochs",
        "Test accuracy %",
        "Test, flip TTA %",
        "Best val % (epoch)",
        "Train s",
        "State",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let rows = c
        .runs
        .iter()
        .map(|r| {
            let epochs = format!("{}/{}", r.metrics.len(), r.manifest.config.epochs);
            let (test, tta, best, secs, state) = match &r.summary {
                Some(s) => (
                    format!("{:.2}", 100.0 * s.test.accuracy),
                    // Flip test-time augmentation (--tta-flip), beside the plain figure.
                    s.test_tta
                        .as_ref()
                        .map_or("—".to_string(), |t| format!("{:.2}", 100.0 * t.accuracy)),
                    s.best_val_accuracy.map_or("—".to_string(), |(a, e)| {
                        format!("{:.2} ({e})", 100.0 * a)
                    }),
                    format!("{:.0}", s.train_seconds),
                    "finished".to_string(),
                ),
                None => (
                    "—".into(),
                    "—".into(),
                    "—".into(),
                    format!("{:.0}", r.metrics.iter().map(|m| m.seconds).sum::<f64>()),
                    "in progress / interrupted".into(),
                ),
            };
            vec![
                r.id.clone(),
                r.seed.to_string(),
                epochs,
                test,
                tta,
                best,
                secs,
                state,
            ]
        })
        .collect();
    (header, rows)
}

/// A Markdown table: the first `labels` columns are names (left-aligned), the rest numbers.
fn md_table(out: &mut String, header: &[String], labels: usize, rows: &[Vec<String>]) {
    let esc = |s: &str| s.replace('|', "\\|");
    let _ = writeln!(
        out,
        "| {} |",
        header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(
        out,
        "|{}",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i < labels { "---|" } else { "---:|" })
            .collect::<String>()
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} |",
            row.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        );
    }
    out.push('\n');
}

/// The accuracy table alone, as Markdown (also printed by `visionnet report`).
pub fn accuracy_markdown(a: &Analysis) -> String {
    let (header, rows) = accuracy_rows(a);
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|(t, best)| if best { format!("**{t}**") } else { t })
                .collect()
        })
        .collect();
    let mut out = String::new();
    md_table(&mut out, &header, 2, &rows);
    out
}

fn statistics_note(a: &Analysis) -> String {
    format!(
        "Δ is the model's test accuracy minus its twin's (percentage points), averaged over the seeds both \
         finished; the twin is the grid's plain one, or the plain cnn matched to the model's parameters or FLOPs. \
         The {:.0}% interval is a percentile bootstrap ({} replicates) that redraws seeds and test images with \
         replacement, keeping each (seed, image) pair of the two models together; the verdict follows it: \
         better / worse when it excludes 0. Holm p: the bootstrap p-value adjusted by Holm-Bonferroni over all {} \
         comparisons of this report, and its verdict at {:.2}. Seed test p: the exact sign-flip permutation \
         test of the per-seed differences (the seeds are the replicates; min: the smallest p this many seeds can \
         give). b and c count the (seed, image) cells only the model, or only the twin, gets right: descriptive \
         only, since pooling them over seeds would count each test image once per seed.",
        100.0 * a.level,
        a.replicates,
        a.comparisons.len(),
        1.0 - a.level
    )
}

fn overview(c: &Collection) -> String {
    let finished = c.runs.iter().filter(|r| r.finished()).count();
    let mut s = format!(
        "{} runs: {} finished, {} in progress or interrupted",
        c.runs.len() + c.missing.len(),
        finished,
        c.runs.len() - finished
    );
    if !c.missing.is_empty() {
        s.push_str(&format!(", {} not started", c.missing.len()));
    }
    s.push('.');
    s
}

/// The whole report as Markdown; figures are the PNG files beside it.
pub fn markdown(c: &Collection, a: &Analysis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Experiment report: {}\n", c.root.display());
    if let Some(d) = &c.description {
        let _ = writeln!(out, "{d}\n");
    }
    if let Some(g) = &c.grid {
        let _ = writeln!(out, "Grid: `{g}`. {}\n", overview(c));
    } else {
        let _ = writeln!(out, "{}\n", overview(c));
    }
    let _ = writeln!(out, "## Test accuracy (%), the study's Table 1\n");
    let _ = writeln!(
        out,
        "Mean ± sample standard deviation over seeds; n = seeds finished. Best per dataset in bold.\n"
    );
    out.push_str(&accuracy_markdown(a));

    let _ = writeln!(
        out,
        "## Each model against its twins (plain and compute-matched)\n"
    );
    if a.comparisons.is_empty() {
        let _ = writeln!(
            out,
            "No model has a twin with finished runs on the same dataset and recipe.\n"
        );
    } else {
        let _ = writeln!(out, "{}\n", statistics_note(a));
        let rows: Vec<Vec<String>> = a.comparisons.iter().map(comparison_row).collect();
        md_table(&mut out, &comparison_header(a), 5, &rows);
        let _ = writeln!(
            out,
            "### What each verdict is worth: variance split and power\n\n{}\n",
            worth_note(a)
        );
        let rows: Vec<Vec<String>> = a.comparisons.iter().map(worth_row).collect();
        md_table(&mut out, &worth_header(), 4, &rows);
    }
    for f in &a.factorial {
        let _ = writeln!(
            out,
            "## Factorial analysis: {} / {}\n\n{}\n",
            f.dataset,
            f.recipe,
            factorial_note(f)
        );
        md_table(&mut out, &factorial_header(), 2, &factorial_rows(f));
    }
    for s in &a.skipped {
        let _ = writeln!(
            out,
            "- not compared: {} vs {} on {} / {}: {}",
            s.model, s.twin, s.dataset, s.recipe, s.reason
        );
    }
    if !a.skipped.is_empty() {
        out.push('\n');
    }

    let _ = writeln!(out, "## Cost\n");
    let _ = writeln!(
        out,
        "Trainable parameters and forward FLOPs per image (multiply-add = 2) for the dataset's classes and image size; seconds per epoch (training and validation) and training images/s, each the median over every epoch of every run (an epoch paused for a benchmark would swamp a mean).\n"
    );
    let rows: Vec<Vec<String>> = a.costs.iter().map(cost_row).collect();
    md_table(&mut out, &cost_header(), 3, &rows);

    let _ = writeln!(out, "## Training curves (the study's Figures 3 and 4)\n");
    for f in &a.figures {
        let _ = writeln!(
            out,
            "### {} · {}\n\n![training curves, {} / {}]({}.png) ([SVG]({}.svg))\n",
            f.dataset, f.recipe, f.dataset, f.recipe, f.stem, f.stem
        );
    }

    let _ = writeln!(out, "## Runs\n");
    let (header, rows) = run_rows(c);
    md_table(&mut out, &header, 1, &rows);
    if !c.missing.is_empty() {
        let _ = writeln!(out, "Not started: {}\n", c.missing.join(", "));
    }
    for u in &c.unreadable {
        let _ = writeln!(out, "- unreadable: {u}");
    }
    out
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML table: the first `labels` columns are names (left-aligned), the rest numbers; each
/// cell's text with its CSS class (`""`, `"best"`, `"better"`, `"worse"`).
fn html_table(out: &mut String, header: &[String], labels: usize, rows: &[Vec<(String, &str)>]) {
    let align = |i: usize| if i < labels { " class=\"l\"" } else { "" };
    out.push_str("<table>\n<thead><tr>");
    for (i, h) in header.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", align(i), escape(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, (text, class)) in row.iter().enumerate() {
            let classes: Vec<&str> = [
                (i < labels).then_some("l"),
                (!class.is_empty()).then_some(*class),
            ]
            .into_iter()
            .flatten()
            .collect();
            if classes.is_empty() {
                let _ = write!(out, "<td>{}</td>", escape(text));
            } else {
                let _ = write!(
                    out,
                    "<td class=\"{}\">{}</td>",
                    classes.join(" "),
                    escape(text)
                );
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

fn plain(rows: Vec<Vec<String>>) -> Vec<Vec<(String, &'static str)>> {
    rows.into_iter()
        .map(|r| r.into_iter().map(|t| (t, "")).collect())
        .collect()
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:1300px;color:#222;padding:0 16px}\
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}\
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}\
.l{text-align:left}.best{font-weight:bold}\
p.note{color:#555;font-size:13px;max-width:1100px}figure{margin:12px 0 28px}\
figure svg{max-width:100%;height:auto;border:1px solid #eee}\
.better{color:#1a7f37}.worse{color:#c62828}";

/// The whole report as one self-contained HTML page; `svgs` are the figures (stem, SVG), in
/// the order of `a.figures`.
pub fn html(c: &Collection, a: &Analysis, svgs: &[(String, String)]) -> String {
    let mut out = String::new();
    let title = format!("Experiment report: {}", c.root.display());
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    if let Some(d) = &c.description {
        let _ = writeln!(out, "<p>{}</p>", escape(d));
    }
    let grid = c
        .grid
        .as_ref()
        .map(|g| format!("Grid: <code>{}</code>. ", escape(g)))
        .unwrap_or_default();
    let _ = writeln!(out, "<p>{grid}{}</p>", escape(&overview(c)));

    let _ = writeln!(out, "<h2>Test accuracy (%), the study's Table 1</h2>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Mean ± sample standard deviation over seeds; n = seeds finished. Best per dataset in bold.</p>"
    );
    let (header, rows) = accuracy_rows(a);
    let rows: Vec<Vec<(String, &str)>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|(t, best)| (t, if best { "best" } else { "" }))
                .collect()
        })
        .collect();
    html_table(&mut out, &header, 2, &rows);

    let _ = writeln!(
        out,
        "<h2>Each model against its twins (plain and compute-matched)</h2>"
    );
    if a.comparisons.is_empty() {
        let _ = writeln!(
            out,
            "<p>No model has a twin with finished runs on the same dataset and recipe.</p>"
        );
    } else {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(&statistics_note(a)));
        // The verdict (last column) coloured.
        let rows: Vec<Vec<(String, &str)>> = a
            .comparisons
            .iter()
            .map(|cmp| {
                let row = comparison_row(cmp);
                let last = row.len() - 1;
                let class = match verdict(cmp) {
                    "better" => "better",
                    "worse" => "worse",
                    _ => "",
                };
                row.into_iter()
                    .enumerate()
                    .map(|(i, t)| (t, if i == last { class } else { "" }))
                    .collect()
            })
            .collect();
        html_table(&mut out, &comparison_header(a), 5, &rows);
        let _ = writeln!(
            out,
            "<h3>What each verdict is worth: variance split and power</h3>\n<p class=\"note\">{}</p>",
            escape(&worth_note(a))
        );
        html_table(
            &mut out,
            &worth_header(),
            4,
            &plain(a.comparisons.iter().map(worth_row).collect()),
        );
    }
    for f in &a.factorial {
        let _ = writeln!(
            out,
            "<h2>Factorial analysis: {} / {}</h2>\n<p class=\"note\">{}</p>",
            escape(&f.dataset),
            escape(&f.recipe),
            escape(&factorial_note(f))
        );
        html_table(&mut out, &factorial_header(), 2, &plain(factorial_rows(f)));
    }
    if !a.skipped.is_empty() {
        out.push_str("<ul>\n");
        for s in &a.skipped {
            let _ = writeln!(
                out,
                "<li>not compared: {} vs {} on {} / {}: {}</li>",
                escape(&s.model),
                escape(&s.twin),
                escape(&s.dataset),
                escape(&s.recipe),
                escape(&s.reason)
            );
        }
        out.push_str("</ul>\n");
    }

    let _ = writeln!(out, "<h2>Cost</h2>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Trainable parameters and forward FLOPs per image (multiply-add = 2) for the dataset's classes and image size; seconds per epoch (training and validation) and training images/s, each the median over every epoch of every run (an epoch paused for a benchmark would swamp a mean).</p>"
    );
    html_table(
        &mut out,
        &cost_header(),
        3,
        &plain(a.costs.iter().map(cost_row).collect()),
    );

    let _ = writeln!(
        out,
        "<h2>Training curves (the study's Figures 3 and 4)</h2>"
    );
    for (f, (_, svg)) in a.figures.iter().zip(svgs) {
        let _ = writeln!(
            out,
            "<figure>\n<figcaption>{} · {}</figcaption>",
            escape(&f.dataset),
            escape(&f.recipe)
        );
        // The SVG document inline: drop an XML declaration if the backend wrote one.
        let body = svg.trim_start();
        let body = if body.starts_with("<?xml") {
            body.split_once("?>").map_or(body, |(_, rest)| rest)
        } else {
            body
        };
        out.push_str(body);
        out.push_str("\n</figure>\n");
    }

    let _ = writeln!(out, "<h2>Runs</h2>");
    let (header, rows) = run_rows(c);
    html_table(&mut out, &header, 1, &plain(rows));
    if !c.missing.is_empty() {
        let _ = writeln!(out, "<p>Not started: {}</p>", escape(&c.missing.join(", ")));
    }
    for u in &c.unreadable {
        let _ = writeln!(out, "<p>unreadable: {}</p>", escape(u));
    }
    out.push_str("</body>\n</html>\n");
    out
}
