//! The compute device: which burn backend runs the tensors, chosen at run time.
//!
//! | device | cargo feature | needs |
//! |---|---|---|
//! | `flex` | (default) | nothing: burn's pure-Rust CPU backend |
//! | `wgpu` | `wgpu` | a Vulkan, Metal or DX12 driver (on a CPU: `mesa-vulkan-drivers`) |
//! | `cuda` | `cuda` | an NVIDIA driver; the build downloads an LLVM bundle |
//! | `tch` | `tch` | PyTorch 2.9.0's libraries (`LIBTORCH_USE_PYTORCH=1`) |

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A compute device, by backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
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
                return Ok(Device::wgpu(Default::default()));
                #[allow(unreachable_code)]
                Err(missing())
            }
            DeviceKind::Cuda => {
                #[cfg(feature = "cuda")]
                return Ok(Device::cuda(0));
                #[allow(unreachable_code)]
                Err(missing())
            }
            DeviceKind::Tch => {
                #[cfg(feature = "tch")]
                return Ok(Device::libtorch());
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
