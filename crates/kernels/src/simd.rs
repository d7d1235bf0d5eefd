//! Which vector instructions the CPU kernels of this crate use, chosen once at run
//! time: one binary runs AVX-512 (16 lanes of `f32`) where the CPU has it, AVX2+FMA (8 lanes)
//! where it has only that, and portable Rust everywhere else.
//!
//! The choice is made on first use and cached. `VISIONNET_SIMD=portable|avx2|avx512` caps it
//! (never above what the CPU has), so the paths can be timed against each other with one binary
//! (`scripts/bench_ab.sh` on two wrappers that set it) and a user can rule out a kernel path.
//!
//! Kernels written once as plain loops (BatchNorm's passes, the ReLU mask, `col2im`'s adds) are
//! compiled per path by [`Simd::run`], which calls them inside a function carrying the path's
//! target features: the compiler vectorises the same source to that path's registers, and
//! since no reduction is reordered, every path gives bit-identical results.

use std::sync::OnceLock;

/// A kernel path, in increasing order of what the CPU must have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Simd {
    /// Portable Rust (the compiler's baseline for the target).
    Portable,
    /// AVX2 and FMA: 8 lanes of `f32`.
    Avx2,
    /// AVX-512 F (with AVX2 and FMA, which every such CPU has): 16 lanes of `f32`.
    Avx512,
}

impl Simd {
    /// Every path, portable first.
    pub const ALL: [Simd; 3] = [Simd::Portable, Simd::Avx2, Simd::Avx512];

    /// The path the kernels take: the best this CPU has, capped by `VISIONNET_SIMD` when set
    /// (an unknown value is ignored with a warning). Detected once.
    pub fn detect() -> Simd {
        static CHOSEN: OnceLock<Simd> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = Simd::best_supported();
            match std::env::var("VISIONNET_SIMD") {
                Ok(name) => match Simd::ALL.into_iter().find(|s| s.name() == name.trim()) {
                    Some(cap) => cap.min(best),
                    None => {
                        eprintln!("warning: VISIONNET_SIMD={name:?} is none of portable, avx2, avx512; using {}", best.name());
                        best
                    }
                },
                Err(_) => best,
            }
        })
    }

    /// The best path this CPU can run, ignoring `VISIONNET_SIMD`.
    pub fn best_supported() -> Simd {
        Simd::ALL
            .into_iter()
            .rev()
            .find(|s| s.is_supported())
            .unwrap_or(Simd::Portable)
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Simd::Portable => true,
                Simd::Avx2 => has!("avx2") && has!("fma"),
                Simd::Avx512 => has!("avx512f") && has!("avx2") && has!("fma"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Simd::Portable
        }
    }

    /// Every path this CPU can run, portable first: what tests hold against each other.
    pub fn supported() -> Vec<Simd> {
        Simd::ALL.into_iter().filter(|s| s.is_supported()).collect()
    }

    /// The path's name, as `VISIONNET_SIMD` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }

    /// Whether this is AVX2 or better (the AVX2 kernels may run).
    pub fn avx2(self) -> bool {
        self >= Simd::Avx2
    }

    /// `f()` compiled for this path: inside a function with the path's target features, so
    /// that the plain loops `f` inlines are vectorised to its registers. `f` must not rely on
    /// anything but the path's features (it never does: it is ordinary Rust).
    ///
    /// # Panics
    /// If the CPU cannot run the path (the check is two cached loads).
    #[inline(always)]
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        assert!(
            self.is_supported(),
            "the {} kernels on a CPU without them",
            self.name()
        );
        #[cfg(target_arch = "x86_64")]
        match self {
            // SAFETY: the CPU has the path's features (asserted above).
            Simd::Avx512 => return unsafe { x86::avx512(f) },
            Simd::Avx2 => return unsafe { x86::avx2(f) },
            Simd::Portable => {}
        }
        f()
    }
}

/// Prints `paths: portable, avx2, avx512` (those this CPU runs) for a test that holds each of
/// them to the portable one, so `--nocapture` shows what a test run covered.
pub fn report_paths(test: &str) -> Vec<Simd> {
    let paths = Simd::supported();
    let names: Vec<&str> = paths.iter().map(|s| s.name()).collect();
    eprintln!("{test}: paths: {}", names.join(", "));
    paths
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    /// `f()` with AVX-512 F (and AVX2, FMA) enabled.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    /// `f()` with AVX2 and FMA enabled.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_ordered_and_the_detected_one_is_supported() {
        let paths = report_paths("simd");
        assert_eq!(paths[0], Simd::Portable);
        assert!(paths.windows(2).all(|w| w[0] < w[1]));
        assert!(Simd::detect().is_supported());
        assert!(Simd::detect() <= Simd::best_supported());
        // every path runs a plain loop to the same result
        let x: Vec<f32> = (0..37).map(|i| i as f32 * 0.37 - 5.0).collect();
        let want: Vec<f32> = x.iter().map(|v| v * 1.5 + 0.25).collect();
        for simd in paths {
            let got: Vec<f32> = simd.run(|| x.iter().map(|v| v * 1.5 + 0.25).collect());
            assert_eq!(got, want, "{simd:?}");
        }
    }
}
