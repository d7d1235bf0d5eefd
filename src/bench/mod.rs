//! Throughput measurement: training steps (forward, backward, optimizer) and inference on
//! synthetic batches, timed after warm-up, reported as medians; and this CPU's FMA peak
//! ([`peak`]), to set the GFLOP/s of a step against.

pub mod peak;

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::error::Result;
use crate::model::table::network_config;
use crate::model::{ImageClassifier, ImageClassifierConfig, ModelSpec, Network};

/// What to time.
#[derive(Clone, Debug)]
pub struct BenchSpec {
    /// The model.
    pub model: ModelSpec,
    /// Images per training step.
    pub batch_size: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Classes of the output layer.
    pub num_classes: usize,
    /// `[c, h, w]` of the input.
    pub input: [usize; 3],
}

/// Median seconds per step and images per second, and the memory the timed steps took.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    /// Median seconds of one step.
    pub median_seconds: f64,
    /// Images per second at the median.
    pub images_per_second: f64,
    /// Resident memory before the timed steps (model, optimizer state, batch, warm-up done), the
    /// allocator's free memory handed back first (glibc `malloc_trim`), bytes.
    pub rss_before_bytes: u64,
    /// Peak resident memory during the timed steps (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
    /// Whether the peak was reset before the timed steps (else it is the process's lifetime peak).
    pub peak_reset: bool,
    /// CPU seconds all the process's threads spent on the timed steps together (Linux
    /// `/proc/self/task/*/schedstat`), if known: on a machine shared with other work,
    /// images per CPU-second compare better than images per second.
    pub cpu_seconds: Option<f64>,
}

/// Seconds all threads of this process have run on a CPU so far (the first field of each
/// `/proc/self/task/*/schedstat`, nanoseconds), if the kernel reports it. Threads that have
/// exited are not counted: measure spans over which the threads live.
pub fn process_cpu_seconds() -> Option<f64> {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        total += schedstat_seconds(&task.ok()?.path().join("schedstat"))?;
    }
    Some(total)
}

/// The time on a CPU in a `schedstat` file of `/proc` (its first field, nanoseconds), seconds.
fn schedstat_seconds(path: &std::path::Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.split_whitespace().next()?.parse::<u64>().ok()? as f64 / 1e9)
}

/// What a benchmark step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward, cross-entropy, backward and an Adam step (lr 1e-3), BatchNorm in training mode.
    Train,
    /// Forward only, on the inference copy (no autodiff, BatchNorm with running statistics).
    Infer,
}

/// The resident-memory peak of a stretch of work: `start` resets the kernel's peak counter
/// (`/proc/self/clear_refs`), `peak` reads it (`VmHWM`). Linux only; elsewhere an error.
struct PeakWindow {
    before: u64,
    reset: bool,
    cpu_start: Option<f64>,
}

/// Hands the C allocator's free memory back to the system (glibc's `malloc_trim`), so that the
/// resident size read next counts live memory only: memory freed by the warm-up steps but kept
/// by the allocator would otherwise count as "before" and hide from what the timed steps add.
/// `bench/pytorch_reference.py` does the same for PyTorch. A no-op off glibc.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes a byte count, touches only the allocator's own
        // free lists, and is thread-safe.
        unsafe { malloc_trim(0) };
    }
}

impl PeakWindow {
    fn start() -> Result<Self> {
        trim_allocator();
        let before = status_bytes("VmRSS")?;
        let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Ok(Self {
            before,
            reset,
            cpu_start: process_cpu_seconds(),
        })
    }

    fn timing(self, times: Vec<f64>, batch: usize) -> Result<Timing> {
        let cpu_seconds = self
            .cpu_start
            .zip(process_cpu_seconds())
            .map(|(a, b)| b - a);
        let peak = status_bytes("VmHWM")?;
        let m = crate::stats::median(times).expect("a bench times at least one step");
        Ok(Timing {
            median_seconds: m,
            images_per_second: batch as f64 / m,
            rss_before_bytes: self.before,
            peak_rss_bytes: peak,
            peak_reset: self.reset,
            cpu_seconds,
        })
    }
}

/// The nominal FLOPs of one step of `batch` images whose forward pass costs
/// `forward_flops_per_image` ([`crate::model::ModelCost::of`]): training counts forward plus
/// backward as 3x the forward pass (the backward pass does two products of the forward's size,
/// the input and the weight gradient), inference 1x.
///
/// Convolutions count the FLOPs of a direct convolution (`2 * c_in * k * k` per output value)
/// however they are computed: Winograd's F(4x4, 3x3) does about a quarter of those
/// multiplications, and the multiplications it saves still count, so the GFLOP/s of a
/// Winograd step are "direct-convolution-equivalent" and can exceed what the FMA units did.
/// Element-wise work (BatchNorm, ReLU, pooling, softmax, the optimizer) is not counted.
pub fn step_flops(forward_flops_per_image: u64, batch: usize, mode: Mode) -> f64 {
    let passes = match mode {
        Mode::Train => 3.0,
        Mode::Infer => 1.0,
    };
    passes * forward_flops_per_image as f64 * batch as f64
}

/// GFLOP/s of a step that does `flops` in `seconds`.
pub fn gflops_per_second(flops: f64, seconds: f64) -> f64 {
    flops / seconds / 1e9
}

/// Times `spec.model` in `mode`.
pub fn time_steps(spec: &BenchSpec, mode: Mode, device: &Device) -> Result<Timing> {
    match mode {
        Mode::Train => train_steps(spec, device),
        Mode::Infer => infer_steps(spec, device),
    }
}

/// Times training steps of `spec.model` with Adam (the one `--optimizer adam` trains with) on
/// random images.
pub fn train_steps(spec: &BenchSpec, device: &Device) -> Result<Timing> {
    let TrainingSetup {
        ad,
        mut model,
        images,
        labels,
    } = training_setup(spec, device)?;
    let b = spec.batch_size;
    let mut optim = crate::train::optimizer::adam(None);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut step = |model: Network| {
        let loss = loss_fn.forward(model.forward(images.clone()), labels.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1e-3, model, grads);
        let _ = ad.sync();
        model
    };
    for _ in 0..spec.warmup {
        model = step(model);
    }
    let window = PeakWindow::start()?;
    let mut times = Vec::with_capacity(spec.steps);
    for _ in 0..spec.steps {
        let start = Instant::now();
        model = step(model);
        times.push(start.elapsed().as_secs_f64());
    }
    window.timing(times, b)
}

/// Times inference (forward only, the model's inference copy) of `spec.model` on random images.
pub fn infer_steps(spec: &BenchSpec, device: &Device) -> Result<Timing> {
    let config = network_config(&spec.model, spec.num_classes, spec.input)?;
    config.check_naive_attention_memory(&spec.model.name, spec.batch_size, 2, "--batch-size")?;
    let model = config.init(device)?;
    model.visit(&mut Materialize);
    let [c, h, w] = spec.input;
    let b = spec.batch_size;
    let images = Tensor::<4>::random(
        [b, c, h, w],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let step = || {
        let _ = model.forward(images.clone()).into_data(); // [b, classes], read back: the work is done
    };
    for _ in 0..spec.warmup {
        step();
    }
    let window = PeakWindow::start()?;
    let mut times = Vec::with_capacity(spec.steps);
    for _ in 0..spec.steps {
        let start = Instant::now();
        step();
        times.push(start.elapsed().as_secs_f64());
    }
    window.timing(times, b)
}

/// Resident memory of the process around one training step, from `/proc/self/status`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepMemory {
    /// Resident set before the step (model, optimizer and data in place), bytes.
    pub before: u64,
    /// Peak resident set during the step (`VmHWM`), bytes.
    pub peak: u64,
    /// Whether the peak was reset before the step (else it is the process's lifetime peak).
    pub peak_reset: bool,
}

impl StepMemory {
    /// What the step added at its peak, bytes.
    pub fn step_peak(&self) -> u64 {
        self.peak.saturating_sub(self.before)
    }
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Result<u64> {
    let path = "/proc/self/status";
    let text = std::fs::read_to_string(path).map_err(|e| crate::Error::io(path, e))?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| {
            crate::Error::data(path, format!("no {field} line (peak memory needs Linux)"))
        })
}

/// Initialises every lazily-initialised parameter.
struct Materialize;

impl burn::module::ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Peak resident memory of one training step (forward, backward, Adam) of `spec.model` on
/// random images. Meant to run in a fresh process: the model, optimizer and batch are set up,
/// the kernel's peak counter is reset (`/proc/self/clear_refs`), one step runs, and `VmHWM` is
/// read.
///
/// A naive attention model is refused (naming `--batch-size`) when its attention matrices alone
/// could take more than half the memory the system has available
/// ([`NetworkConfig::check_naive_attention_memory`](crate::model::NetworkConfig::check_naive_attention_memory)):
/// on a shared machine it must not run into the out-of-memory killer.
pub fn train_step_memory(spec: &BenchSpec, device: &Device) -> Result<StepMemory> {
    let TrainingSetup {
        ad,
        mut model,
        images,
        labels,
    } = training_setup(spec, device)?;
    let mut optim = crate::train::optimizer::adam(None);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let _ = ad.sync();
    trim_allocator();
    let before = status_bytes("VmRSS")?;
    let peak_reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let loss = loss_fn.forward(model.forward(images), labels);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = optim.step(1e-3, model, grads);
    let _ = ad.sync();
    let peak = status_bytes("VmHWM")?;
    drop(model);
    Ok(StepMemory {
        before,
        peak,
        peak_reset,
    })
}

/// What a timed or measured training step needs: the autodiff device, the model with every
/// parameter initialised, and a fixed random batch with labels cycling through the classes.
struct TrainingSetup {
    ad: Device,
    model: Network,
    images: Tensor<4>,
    labels: Tensor<1, Int>,
}

/// Builds [`TrainingSetup`] for `spec`, refusing (naming `--batch-size`) a naive attention model
/// whose matrices could exhaust memory.
fn training_setup(spec: &BenchSpec, device: &Device) -> Result<TrainingSetup> {
    let config = network_config(&spec.model, spec.num_classes, spec.input)?;
    config.check_naive_attention_memory(&spec.model.name, spec.batch_size, 4, "--batch-size")?;
    let ad = device.clone().autodiff();
    let model = config.init(&ad)?;
    model.visit(&mut Materialize);
    let [c, h, w] = spec.input;
    let b = spec.batch_size;
    let images = Tensor::<4>::random(
        [b, c, h, w],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &ad,
    );
    let labels = Tensor::<1, Int>::from_data(
        TensorData::new(
            (0..b as i64)
                .map(|i| i % spec.num_classes as i64)
                .collect::<Vec<_>>(),
            [b],
        ),
        &ad,
    );
    Ok(TrainingSetup {
        ad,
        model,
        images,
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_training_step_counts_three_forward_passes_of_nominal_direct_conv_flops() {
        let spec = ModelSpec {
            name: "cnn".into(),
            options: Default::default(),
        };
        let device = crate::device::DeviceKind::Flex.device().unwrap();
        let forward = crate::model::ModelCost::of(&spec, 10, [3, 32, 32], &device)
            .unwrap()
            .flops;
        // The plain CNN by hand: 3x3 convs 3->32 at 32x32, 32->64 at 16x16, 64->128 at 8x8,
        // 128->256 at 4x4 (direct-conv count, although three of them run as Winograd), then
        // the head 1024->512->256->128->10; a multiply-add is 2 FLOPs.
        let convs: u64 = [(3, 32, 32), (32, 64, 16), (64, 128, 8), (128, 256, 4)]
            .iter()
            .map(|&(ci, co, side)| 2 * ci * 9 * co * side * side)
            .sum();
        let head: u64 = [(1024, 512), (512, 256), (256, 128), (128, 10)]
            .iter()
            .map(|&(i, o)| 2 * i * o)
            .sum();
        assert_eq!(forward, convs + head);
        assert_eq!(
            step_flops(forward, 64, Mode::Train),
            3.0 * 64.0 * forward as f64
        );
        assert_eq!(
            step_flops(forward, 256, Mode::Infer),
            256.0 * forward as f64
        );
        assert_eq!(gflops_per_second(3e9, 1.5), 2.0);
    }
}
