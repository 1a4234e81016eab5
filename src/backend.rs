//! The one place that turns cargo features into a Burn device.

use std::fmt;

use burn::tensor::Device;

/// A Burn backend this build can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Burn's pure-Rust CPU backend (feature `flex`, the default).
    Flex,
    /// Burn's older ndarray CPU backend (feature `ndarray`).
    Ndarray,
    /// WebGPU/Vulkan (feature `wgpu`); lavapipe on machines without a GPU.
    Wgpu,
}

impl BackendKind {
    /// The backend the enabled features select: `wgpu` over `ndarray` over `flex`.
    pub fn from_features() -> Self {
        if cfg!(feature = "wgpu") {
            BackendKind::Wgpu
        } else if cfg!(feature = "ndarray") {
            BackendKind::Ndarray
        } else {
            BackendKind::Flex
        }
    }

    /// Every backend compiled into this build.
    pub fn compiled() -> Vec<Self> {
        [BackendKind::Flex, BackendKind::Ndarray, BackendKind::Wgpu]
            .into_iter()
            .filter(|kind| kind.is_compiled())
            .collect()
    }

    /// Whether this build has the backend's feature.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Ndarray => cfg!(feature = "ndarray"),
            BackendKind::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backend's default device (without autodiff).
    ///
    /// # Errors
    /// When this build was compiled without the backend's cargo feature.
    pub fn device(self) -> Result<Device, String> {
        match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            BackendKind::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(format!(
                "backend '{other}' is not compiled into this build; rebuild with \
                 `--features {other}` (compiled: {})",
                BackendKind::compiled()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            BackendKind::Wgpu => "wgpu",
        })
    }
}

/// The device of the backend the enabled cargo features select (see
/// [`BackendKind::from_features`]), without autodiff.
pub fn select_device() -> Device {
    BackendKind::from_features()
        .device()
        .expect("the feature-selected backend is compiled in")
}
