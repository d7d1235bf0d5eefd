//! Progress display: a bar with ETA on a terminal; otherwise (a log file, a grid run under
//! `nohup`) a plain line every [`LOG_LINE_EVERY`] within an epoch, so an epoch that takes an hour
//! on a CPU (a baseline) still shows that it moves and when it will end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::metrics::EpochMetrics;

/// How often a plain progress line is printed within an epoch when there is no terminal.
pub const LOG_LINE_EVERY: Duration = Duration::from_secs(60);

/// Reports a run's progress.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// When the current epoch started, and its images so far (for images/s).
    started: Instant,
    images: usize,
    epochs: usize,
    quiet: bool,
    /// The current epoch, its steps done and in all (for the plain lines).
    epoch: usize,
    steps_done: usize,
    steps: usize,
    /// When the last plain line was printed, and how often to print one.
    last_line: Instant,
    line_every: Duration,
}

impl Progress {
    /// A reporter for a run of `epochs` epochs; `quiet` silences it (tests, library use).
    pub fn new(epochs: usize, quiet: bool) -> Self {
        Self {
            bar: None,
            started: Instant::now(),
            images: 0,
            epochs,
            quiet,
            epoch: 0,
            steps_done: 0,
            steps: 0,
            last_line: Instant::now(),
            line_every: LOG_LINE_EVERY,
        }
    }

    /// The same reporter printing its plain in-epoch lines every `every` instead.
    pub fn with_line_every(mut self, every: Duration) -> Self {
        self.line_every = every;
        self
    }

    /// Starts an epoch of `steps` steps. Shows a bar only when stderr is a terminal.
    pub fn start_epoch(&mut self, epoch: usize, steps: usize) {
        self.started = Instant::now();
        self.last_line = self.started;
        self.images = 0;
        (self.epoch, self.steps_done, self.steps) = (epoch, 0, steps);
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{}", self.epochs));
        self.bar = Some(bar);
    }

    /// One step of `images` images done, with the epoch's running loss and accuracy.
    pub fn step(&mut self, images: usize, loss: f64, accuracy: f64) {
        self.images += images;
        self.steps_done += 1;
        if let Some(bar) = &self.bar {
            let rate = self.images as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.inc(1);
            bar.set_message(format!(
                "loss {loss:.4}  acc {:.2}%  {rate:.0} img/s",
                100.0 * accuracy
            ));
        } else if let Some(line) = self.log_line(loss, accuracy) {
            println!("{line}");
        }
    }

    /// The plain in-epoch line, when one is due: no bar, not quiet, `line_every` since the last
    /// one, and steps left in the epoch.
    fn log_line(&mut self, loss: f64, accuracy: f64) -> Option<String> {
        if self.quiet
            || self.bar.is_some()
            || self.steps_done >= self.steps
            || self.last_line.elapsed() < self.line_every
        {
            return None;
        }
        self.last_line = Instant::now();
        let elapsed = self.started.elapsed().as_secs_f64();
        let eta = elapsed / self.steps_done as f64 * (self.steps - self.steps_done) as f64;
        let rate = self.images as f64 / elapsed.max(1e-9);
        Some(format!(
            "  epoch {}/{}  step {}/{}  loss {loss:.4}  acc {:.2}%  {rate:.1} img/s  {elapsed:.0} s, about {eta:.0} s to go",
            self.epoch,
            self.epochs,
            self.steps_done,
            self.steps,
            100.0 * accuracy
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts an epoch as a log (no terminal) would see it, whatever the test's stderr is.
    fn start_without_bar(p: &mut Progress, epoch: usize, steps: usize) {
        p.start_epoch(epoch, steps);
        if let Some(bar) = p.bar.take() {
            bar.finish_and_clear();
        }
    }

    #[test]
    fn plain_lines_come_at_the_interval_and_not_after_the_last_step() {
        let mut p = Progress::new(3, false).with_line_every(Duration::ZERO);
        start_without_bar(&mut p, 2, 4);
        p.images = 64;
        p.steps_done = 1;
        let line = p.log_line(1.5, 0.25).expect("a line is due");
        assert!(
            line.contains("epoch 2/3") && line.contains("step 1/4") && line.contains("acc 25.00%"),
            "{line}"
        );
        p.steps_done = 4; // the epoch's end line takes over
        assert!(p.log_line(1.5, 0.25).is_none());

        let mut slow = Progress::new(3, false).with_line_every(Duration::from_secs(3600));
        start_without_bar(&mut slow, 1, 4);
        slow.steps_done = 1;
        assert!(
            slow.log_line(1.0, 0.5).is_none(),
            "no line before the interval"
        );

        let mut quiet = Progress::new(3, true).with_line_every(Duration::ZERO);
        start_without_bar(&mut quiet, 1, 4);
        quiet.steps_done = 1;
        assert!(quiet.log_line(1.0, 0.5).is_none(), "quiet prints nothing");
    }
}
