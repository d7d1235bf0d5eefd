//! The compute device: which burn backend runs the tensors, chosen at run time.
//!
//! | device | cargo feature | needs |
//! |---|---|---|
//! | `flex` | (default) | nothing: burn's pure-Rust CPU backend |
//! | `wgpu` | `wgpu` | a Vulkan, Metal or DX12 driver (on a CPU: `mesa-vulkan-drivers`) |
//! | `cuda` | `cuda` | an NVIDIA driver; the build downloads an LLVM bundle |
//! | `tch` | `tch` | PyTorch 2.9.0's libraries (`LIBTORCH_USE_PYTORCH=1`) |

use std::sync::OnceLock;

use burn::tensor::Device;

use crate::error::{Error, Result};

/// Which device of its kind this process uses (`--device-index`): the I-th discrete GPU for
/// `wgpu`, CUDA device I for `cuda`, LibTorch's CUDA device I for `tch` (without an index,
/// LibTorch computes on the CPU). Set once per process, before the first device is made.
static INDEX: OnceLock<usize> = OnceLock::new();

/// Makes this process use device `index` of its backend (see [`INDEX`]); an error if it uses
/// another already.
pub fn use_index(index: usize) -> Result<()> {
    let set = *INDEX.get_or_init(|| index);
    if set != index {
        return Err(Error::invalid(
            "--device-index",
            format!("this process uses device {set} already, not {index}"),
        ));
    }
    Ok(())
}

/// The device index set by [`use_index`], if any.
pub fn index() -> Option<usize> {
    INDEX.get().copied()
}

/// One device of a multi-device machine: `wgpu:0`, `cuda:1`, `tch:0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceSlot {
    /// Its backend.
    pub kind: DeviceKind,
    /// Its index among the backend's devices.
    pub index: usize,
}

impl std::str::FromStr for DeviceSlot {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (kind, index) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not BACKEND:INDEX (wgpu:0, cuda:1, tch:0)"))?;
        let kind = match kind {
            "wgpu" => DeviceKind::Wgpu,
            "cuda" => DeviceKind::Cuda,
            "tch" => DeviceKind::Tch,
            "flex" => {
                return Err(format!(
                    "'{s}': flex is the CPU, one device; use --jobs and --threads-per-job"
                ));
            }
            other => {
                return Err(format!(
                    "'{s}': unknown backend '{other}' (wgpu, cuda or tch)"
                ));
            }
        };
        let index = index
            .parse()
            .map_err(|_| format!("'{s}': the index '{index}' is not a number"))?;
        Ok(DeviceSlot { kind, index })
    }
}

impl std::fmt::Display for DeviceSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}",
            format!("{:?}", self.kind).to_lowercase(),
            self.index
        )
    }
}

/// A compute device, by backend.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend (multi-threaded, SIMD).
    Flex,
    /// Any GPU through wgpu (Vulkan, Metal, DX12).
    Wgpu,
    /// NVIDIA GPU through CubeCL's CUDA runtime.
    Cuda,
    /// LibTorch (PyTorch's C++ library), CPU or CUDA.
    Tch,
}

impl DeviceKind {
    /// The cargo feature that compiles this backend in.
    pub fn feature(self) -> &'static str {
        match self {
            DeviceKind::Flex => "(default)",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
            DeviceKind::Tch => "tch",
        }
    }

    /// The inference device of this backend, or an error naming the missing cargo feature.
    pub fn device(self) -> Result<Device> {
        let missing = || {
            Error::invalid(
                "--device",
                format!(
                    "{self:?} support is not compiled in; rebuild with `--features {}`",
                    self.feature()
                ),
            )
        };
        match self {
            DeviceKind::Flex => Ok(Device::flex()),
            DeviceKind::Wgpu => {
                #[cfg(feature = "wgpu")]
                return Ok(Device::wgpu(index().map_or_else(
                    Default::default,
                    burn::tensor::DeviceKind::DiscreteGpu,
                )));
                #[allow(unreachable_code)]
                Err(missing())
            }
            DeviceKind::Cuda => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(index().unwrap_or(0)));
                #[allow(unreachable_code)]
                Err(missing())
            }
            DeviceKind::Tch => {
                #[cfg(feature = "tch")]
                #[allow(deprecated)]
                // burn-tch is deprecated in burn 0.22; still the LibTorch path
                return Ok(match index() {
                    Some(i) => Device::libtorch_cuda(i),
                    None => Device::libtorch(),
                });
                #[allow(unreachable_code)]
                Err(missing())
            }
        }
    }

    /// The training device: [`device`](Self::device) with autodiff.
    pub fn autodiff_device(self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }
}

/// Bytes of memory the system can still give (`MemAvailable` of `/proc/meminfo`), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}
