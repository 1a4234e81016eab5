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

/// Makes the calling thread worker 0 of rayon's global pool, the pool flex's kernels run on,
/// with the pool's default size (one thread per core). Returns whether it did: `false` when
/// the pool already exists (something used rayon first), which changes nothing but speed.
///
/// A thread outside the pool hands every parallel kernel to the pool's workers and sleeps
/// until they finish, so between kernels the workers wake and sleep again, and one thread
/// more than the cores competes for them. A training loop running on worker 0 starts each
/// kernel on its own thread and shares it with the others, as PyTorch's OpenMP threads do.
/// `docs/performance.md` measures what this buys the main job.
///
/// Call it first in `main`, and only where one thread drives the training: a thread that
/// joins the pool this way runs the pool's work only inside its own parallel calls, so
/// threads of their own (the data-parallel replicas) would be left with one worker fewer.
pub fn run_on_cpu_pool() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}
