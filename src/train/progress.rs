//! Progress display: a bar with ETA on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::EpochMetrics;

/// Reports a run's progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// When the current epoch started, and its images so far (for images/s).
    started: std::time::Instant,
    images: usize,
    epochs: usize,
    quiet: bool,
}

impl Progress {
    /// A reporter for a run of `epochs` epochs; `quiet` silences it (tests, library use).
    pub fn new(epochs: usize, quiet: bool) -> Self {
        Self {
            bar: None,
            started: std::time::Instant::now(),
            images: 0,
            epochs,
            quiet,
        }
    }

    /// Starts an epoch of `steps` steps. Shows a bar only when stderr is a terminal.
    pub fn start_epoch(&mut self, epoch: usize, steps: usize) {
        self.started = std::time::Instant::now();
        self.images = 0;
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    /// One step of `images` images done, with the epoch's running loss and accuracy.
    pub fn step(&mut self, images: usize, loss: f64, accuracy: f64) {
        self.images += images;
        if let Some(bar) = &self.bar {
            let rate = self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.inc(1);
            bar.set_message(format!("loss {loss:.4}  acc {:.2}%  {rate:.0} img/s", 100.0 * accuracy));
        }
    }

    /// Ends an epoch with its metrics line.
    pub fn end_epoch(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        let val = match (m.val_loss, m.val_accuracy) {
            (Some(l), Some(a)) => format!("  val loss {l:.4} acc {:6.2}%", 100.0 * a),
            _ => String::new(),
        };
        println!(
            "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%{val}  lr {:.2e}  {:.1} s  {:.0} img/s",
            m.epoch,
            self.epochs,
            m.train_loss,
            100.0 * m.train_accuracy,
            m.lr,
            m.seconds,
            m.images_per_second
        );
    }

    /// A free-form line (unless quiet).
    pub fn line(&self, text: &str) {
        if !self.quiet {
            println!("{text}");
        }
    }
}
