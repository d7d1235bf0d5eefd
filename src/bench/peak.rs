//! This CPU's FP32 multiply-add peak, measured: every thread runs chains of independent fused
//! multiply-adds on the widest vector registers the CPU has (chosen at run time), so the
//! GFLOP/s a training step reaches can be set against what the cores can do at most.
//!
//! A fused multiply-add counts as 2 FLOPs per lane (the convention of the model's FLOP count,
//! [`crate::model::cost`]). The figure is what a loop of register-only FMAs reaches; real
//! kernels also load, store and shuffle, so no program reaches it.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The instruction path a peak measurement ran on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeakPath {
    /// 16-lane `vfmadd` on 512-bit registers (`avx512f`).
    Avx512,
    /// 8-lane `vfmadd` on 256-bit registers (`avx2` and `fma`).
    Avx2Fma,
    /// Plain multiply then add on whatever vectors the compiler's baseline target has; counts 2
    /// FLOPs per multiply-add like the others.
    Portable,
}

impl PeakPath {
    /// The widest path this CPU supports.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Self::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Self::Avx2Fma;
            }
        }
        Self::Portable
    }

    /// FP32 lanes of one vector on this path (the portable path counts its 8-wide arrays).
    pub fn lanes(self) -> usize {
        match self {
            Self::Avx512 => 16,
            Self::Avx2Fma | Self::Portable => 8,
        }
    }

    /// The name printed and written to JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2Fma => "avx2-fma",
            Self::Portable => "portable",
        }
    }
}

/// The result of [`fma_peak`].
#[derive(Clone, Debug, serde::Serialize)]
pub struct Peak {
    /// The instruction path measured.
    pub path: PeakPath,
    /// Threads that ran at once (rayon's pool).
    pub threads: usize,
    /// FLOPs all threads did together.
    pub flops: f64,
    /// Wall-clock seconds from the first thread's start to the last one's end.
    pub seconds: f64,
    /// `flops / seconds / 1e9`.
    pub gflops_per_second: f64,
    /// The sum over threads of each thread's FLOPs over the time it was actually on a CPU
    /// (`/proc/thread-self/schedstat`, Linux), in GFLOP/s: what the cores do while they run
    /// this, so on a machine shared with other work it still estimates the hardware's peak
    /// (`gflops_per_second` is then lower). `None` where the scheduler's time is unknown.
    pub on_cpu_gflops_per_second: Option<f64>,
}

/// Independent accumulator chains per thread: enough to cover the FMA latency (4-5 cycles) on
/// two FMA pipes with some to spare (at least 10 needed on today's x86 cores).
const CHAINS: usize = 12;

/// Multiply-adds per chain in one call of a kernel (then the clock is read again).
const CHUNK: u64 = 1 << 16;

/// Measures the FP32 FMA peak of all of rayon's threads on the widest path, running for about
/// `duration` (each thread stops at the first chunk that ends after it).
pub fn fma_peak(duration: Duration) -> Peak {
    fma_peak_on(PeakPath::detect(), duration)
}

/// [`fma_peak`] on a given path. A path the CPU lacks falls back to the portable one (its name
/// is then reported), so this never executes an unsupported instruction.
pub fn fma_peak_on(path: PeakPath, duration: Duration) -> Peak {
    let path = if supported(path) {
        path
    } else {
        PeakPath::Portable
    };
    let start = Instant::now();
    let per_thread: Vec<(u64, Option<f64>)> = rayon::broadcast(|_| {
        let begun = Instant::now();
        let cpu_start = thread_cpu_seconds();
        let mut chunks = 0u64;
        let mut sink = 0f32;
        while chunks == 0 || begun.elapsed() < duration {
            sink += run_chunk(path);
            chunks += 1;
        }
        black_box(sink);
        let on_cpu = cpu_start
            .zip(thread_cpu_seconds())
            .map(|(a, b)| b - a)
            .filter(|s| *s > 0.0);
        (chunks, on_cpu)
    });
    let seconds = start.elapsed().as_secs_f64();
    let per_chunk = (CHUNK * CHAINS as u64 * path.lanes() as u64 * 2) as f64;
    let flops = per_thread.iter().map(|(c, _)| *c).sum::<u64>() as f64 * per_chunk;
    let on_cpu_gflops_per_second = per_thread
        .iter()
        .map(|(c, on_cpu)| on_cpu.map(|s| *c as f64 * per_chunk / s / 1e9))
        .sum::<Option<f64>>();
    Peak {
        path,
        threads: per_thread.len(),
        flops,
        seconds,
        gflops_per_second: flops / seconds / 1e9,
        on_cpu_gflops_per_second,
    }
}

/// Seconds the calling thread has run on a CPU (the first field of
/// `/proc/thread-self/schedstat`, in nanoseconds), if the kernel reports it.
fn thread_cpu_seconds() -> Option<f64> {
    super::schedstat_seconds(std::path::Path::new("/proc/thread-self/schedstat"))
}

fn supported(path: PeakPath) -> bool {
    match path {
        PeakPath::Portable => true,
        #[cfg(target_arch = "x86_64")]
        PeakPath::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
        #[cfg(target_arch = "x86_64")]
        PeakPath::Avx2Fma => {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        _ => false,
    }
}

/// One chunk of `CHUNK` multiply-adds on each of `CHAINS` chains; returns a value of the
/// chains so that the work cannot be removed.
fn run_chunk(path: PeakPath) -> f32 {
    match path {
        // SAFETY: `fma_peak_on` runs these paths only after `supported` found the features.
        #[cfg(target_arch = "x86_64")]
        PeakPath::Avx512 => unsafe { x86::chunk_avx512(CHUNK) },
        #[cfg(target_arch = "x86_64")]
        PeakPath::Avx2Fma => unsafe { x86::chunk_avx2(CHUNK) },
        _ => chunk_portable(CHUNK),
    }
}

/// `x = x * m + a` with `m` just below 1: each chain converges to `a / (1 - m)` and stays finite.
const M: f32 = 0.999_9;
const A: f32 = 1e-4;

fn chunk_portable(n: u64) -> f32 {
    let mut x = [[1f32; 8]; CHAINS];
    let (m, a) = (black_box(M), black_box(A));
    for _ in 0..n {
        for chain in &mut x {
            for v in chain.iter_mut() {
                *v = *v * m + a;
            }
        }
    }
    x.iter().flatten().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    use super::{A, M};

    /// Twelve named accumulators (an array may be kept in memory), one FMA each per round.
    macro_rules! fma_rounds {
        ($n:expr, $set1:ident, $fma:ident, $add:ident, $reduce:expr) => {{
            let (m, a) = ($set1(black_box(M)), $set1(black_box(A)));
            let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5] = [$set1(1.0); 6];
            let [mut x6, mut x7, mut x8, mut x9, mut x10, mut x11] = [$set1(1.0); 6];
            for _ in 0..$n {
                x0 = $fma(x0, m, a);
                x1 = $fma(x1, m, a);
                x2 = $fma(x2, m, a);
                x3 = $fma(x3, m, a);
                x4 = $fma(x4, m, a);
                x5 = $fma(x5, m, a);
                x6 = $fma(x6, m, a);
                x7 = $fma(x7, m, a);
                x8 = $fma(x8, m, a);
                x9 = $fma(x9, m, a);
                x10 = $fma(x10, m, a);
                x11 = $fma(x11, m, a);
            }
            let s = $add(
                $add($add(x0, x1), $add(x2, x3)),
                $add($add(x4, x5), $add(x6, x7)),
            );
            $reduce($add(s, $add($add(x8, x9), $add(x10, x11))))
        }};
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn chunk_avx512(n: u64) -> f32 {
        fma_rounds!(n, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, |v| {
            _mm512_reduce_add_ps(v)
        })
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn chunk_avx2(n: u64) -> f32 {
        fma_rounds!(
            n,
            _mm256_set1_ps,
            _mm256_fmadd_ps,
            _mm256_add_ps,
            |v: __m256| {
                let mut lanes = [0f32; 8];
                // SAFETY: `lanes` holds the 8 floats the unaligned store writes.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
                lanes.iter().sum::<f32>()
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_positive_and_finite_and_names_the_detected_path() {
        let peak = fma_peak(Duration::from_millis(20));
        assert_eq!(peak.path, PeakPath::detect());
        assert_eq!(peak.threads, rayon::current_num_threads());
        assert!(
            peak.gflops_per_second.is_finite() && peak.gflops_per_second > 0.0,
            "{peak:?}"
        );
        assert!(peak.seconds >= 0.02, "{peak:?}");
        if let Some(on_cpu) = peak.on_cpu_gflops_per_second {
            // Time on a CPU is at most the wall time, so the on-CPU rate is at least the other
            // (up to rounding: both come from the same FLOPs).
            assert!(
                on_cpu.is_finite() && on_cpu >= 0.99 * peak.gflops_per_second / peak.threads as f64,
                "{peak:?}"
            );
        }
        println!(
            "peak path measured: {} ({:.1} GFLOP/s in a 20 ms test run)",
            peak.path.name(),
            peak.gflops_per_second
        );
    }

    #[test]
    fn every_path_the_cpu_has_runs_and_the_rest_fall_back_to_portable() {
        for path in [PeakPath::Avx512, PeakPath::Avx2Fma, PeakPath::Portable] {
            let peak = fma_peak_on(path, Duration::from_millis(5));
            let expected = if supported(path) {
                path
            } else {
                PeakPath::Portable
            };
            assert_eq!(peak.path, expected);
            assert!(
                peak.gflops_per_second.is_finite() && peak.gflops_per_second > 0.0,
                "{peak:?}"
            );
            println!("peak path {} ran ({:?} asked)", peak.path.name(), path);
        }
    }

    #[test]
    fn the_kernels_keep_their_chains_finite() {
        // A chain converges to A / (1 - M) = 1: CHAINS * lanes of them sum to about that many.
        let total = chunk_portable(CHUNK);
        assert!((total - (CHAINS * 8) as f32).abs() < 1.0, "{total}");
        #[cfg(target_arch = "x86_64")]
        for path in [PeakPath::Avx512, PeakPath::Avx2Fma]
            .into_iter()
            .filter(|p| supported(*p))
        {
            let total = run_chunk(path);
            let expected = (CHAINS * path.lanes()) as f32;
            assert!(
                (total - expected).abs() < 1.0,
                "{} gave {total}",
                path.name()
            );
        }
    }
}
