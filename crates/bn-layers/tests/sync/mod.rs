//! SyncBatchNorm against BatchNorm on the whole batch: replicas each take a slice, and the
//! outputs, input gradients, γ/β gradients (summed over replicas) and running statistics
//! must equal single-device BatchNorm's. The reference is this crate's BatchNorm, itself
//! checked against PyTorch by the conformance suite; the loss `Σ y·w` with a fixed `w` makes
//! the total loss the sum of the replicas' losses, as in data-parallel training.

use bn_layers::{BatchNorm, BatchNormConfig, NormError, ReplicaGroup, SyncBatchNorm};
use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

const C: usize = 3;

/// What one forward and backward produced, as host vectors.
#[derive(Debug, Default)]
pub struct Outcome {
    pub output: Vec<f64>,
    pub input_grad: Vec<f64>,
    pub gamma_grad: Vec<f64>,
    pub beta_grad: Vec<f64>,
    pub running_mean: Vec<f64>,
    pub running_var: Vec<f64>,
    pub batches_tracked: Vec<i64>,
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// A deterministic batch `[n, C, l]` with channel means and scales far from 0 and 1.
fn batch(n: usize, l: usize) -> (Vec<f64>, Vec<f64>) {
    let x = (0..n * C * l)
        .map(|i| {
            let c = (i / l) % C;
            ((i * 37 % 11) as f64 - 5.0) * (1.0 + c as f64) + 3.0 * c as f64
        })
        .collect();
    let w = (0..n * C * l)
        .map(|i| ((i * 13 % 7) as f64 - 3.0) / 4.0)
        .collect();
    (x, w)
}

fn layer(device: &Device) -> BatchNorm {
    let mut bn = BatchNormConfig::new_1d(C).init(device);
    let vector = |v: [f64; C]| {
        Param::from_tensor(Tensor::from_data(TensorData::new(v.to_vec(), [C]), device))
    };
    bn.gamma = Some(vector([1.5, -0.5, 2.0]));
    bn.beta = Some(vector([0.1, 0.2, -0.3]));
    bn
}

/// One training forward and backward of `forward` on `x`, with loss `Σ y·w`.
fn step(
    bn: &BatchNorm,
    forward: impl Fn(Tensor<3>) -> Result<Tensor<3>, NormError>,
    x: &[f64],
    w: &[f64],
    l: usize,
    device: &Device,
) -> Result<Outcome, NormError> {
    let n = x.len() / (C * l);
    let x = Tensor::<3>::from_data(TensorData::new(x.to_vec(), [n, C, l]), device).require_grad();
    let w = Tensor::<3>::from_data(TensorData::new(w.to_vec(), [n, C, l]), device);
    let y = forward(x.clone())?;
    let grads = (y.clone() * w).sum().backward();
    let (mean, var) = bn.running_stats().unwrap();
    Ok(Outcome {
        output: host(y),
        input_grad: host(x.grad(&grads).unwrap()),
        gamma_grad: host(bn.gamma.as_ref().unwrap().grad(&grads).unwrap()),
        beta_grad: host(bn.beta.as_ref().unwrap().grad(&grads).unwrap()),
        running_mean: host(mean),
        running_var: host(var),
        batches_tracked: vec![bn.num_batches_tracked().unwrap()],
    })
}

/// BatchNorm on the whole batch of `n` samples of length `l`.
pub fn single_device(n: usize, l: usize, device: &Device) -> Outcome {
    let (x, w) = batch(n, l);
    let bn = layer(device);
    step(&bn, |x| bn.try_forward(x), &x, &w, l, device).unwrap()
}

/// SyncBatchNorm on replicas holding `slices` samples each (in order) of the same batch.
/// Returns each replica's outcome, or its error.
pub fn replicas(slices: &[usize], l: usize, device: &Device) -> Vec<Result<Outcome, NormError>> {
    let (x, w) = batch(slices.iter().sum(), l);
    // A replica out of step fails the group within seconds, not the default ten minutes.
    let group = ReplicaGroup::with_patience(slices.len(), std::time::Duration::from_secs(10));
    let starts: Vec<usize> = slices
        .iter()
        .scan(0, |start, n| {
            let this = *start;
            *start += n;
            Some(this * C * l)
        })
        .collect();
    std::thread::scope(|scope| {
        let workers: Vec<_> = group
            .members()
            .into_iter()
            .map(|replica| {
                let (x, w) = (&x, &w);
                let range =
                    starts[replica.rank()]..starts[replica.rank()] + slices[replica.rank()] * C * l;
                scope.spawn(move || {
                    let sync = SyncBatchNorm::new(layer(device), replica);
                    step(
                        &sync.bn,
                        |x| sync.try_forward(x),
                        &x[range.clone()],
                        &w[range],
                        l,
                        device,
                    )
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

#[track_caller]
fn assert_close(what: &str, got: &[f64], want: &[f64], tolerance: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let worst = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(
        worst <= tolerance,
        "{what}: error {worst:e} > {tolerance:e}\n got  {got:?}\n want {want:?}"
    );
    worst
}

/// Asserts that replicas over `slices` (samples of length `l`) reproduce single-device
/// BatchNorm to `tolerance`; returns the largest relative error.
pub fn assert_equivalent(slices: &[usize], l: usize, device: &Device, tolerance: f64) -> f64 {
    let want = single_device(slices.iter().sum(), l, device);
    let got: Vec<Outcome> = replicas(slices, l, device)
        .into_iter()
        .map(|r| r.expect("the global batch is large enough"))
        .collect();
    let concat =
        |f: fn(&Outcome) -> &Vec<f64>| got.iter().flat_map(|o| f(o).clone()).collect::<Vec<_>>();
    let sum = |f: fn(&Outcome) -> &Vec<f64>| {
        (0..C)
            .map(|c| got.iter().map(|o| f(o)[c]).sum())
            .collect::<Vec<f64>>()
    };
    let label = format!("{slices:?} × length {l}");
    let mut checks = vec![
        (
            format!("{label} output"),
            concat(|o| &o.output),
            want.output.clone(),
        ),
        (
            format!("{label} input grad"),
            concat(|o| &o.input_grad),
            want.input_grad.clone(),
        ),
        (
            format!("{label} gamma grad"),
            sum(|o| &o.gamma_grad),
            want.gamma_grad.clone(),
        ),
        (
            format!("{label} beta grad"),
            sum(|o| &o.beta_grad),
            want.beta_grad.clone(),
        ),
    ];
    for (rank, outcome) in got.iter().enumerate() {
        let label = format!("{label} replica {rank}");
        checks.push((
            format!("{label} running mean"),
            outcome.running_mean.clone(),
            want.running_mean.clone(),
        ));
        checks.push((
            format!("{label} running var"),
            outcome.running_var.clone(),
            want.running_var.clone(),
        ));
        assert_eq!(outcome.batches_tracked, want.batches_tracked, "{label}");
    }
    checks
        .iter()
        .map(|(what, got, want)| assert_close(what, got, want, tolerance))
        .fold(0.0, f64::max)
}

/// Every case: 2 and 4 replicas, even and uneven slices, with spatial positions (length 4)
/// and without (length 1, where a one-sample replica holds one value per channel).
pub fn assert_all_cases(device: &Device, tolerance: f64) {
    for l in [4, 1] {
        for slices in [
            &[4, 4][..],
            &[3, 5],
            &[2, 2, 2, 2],
            &[1, 3, 2, 2],
            &[1, 1],
            &[0, 4],
        ] {
            let worst = assert_equivalent(slices, l, device, tolerance);
            println!("{slices:?} × length {l}: largest relative error {worst:.1e}");
        }
    }
}

/// The count that matters is the global one: two replicas of one value each are fine
/// (above); one value per channel in the whole group is an error.
pub fn assert_global_count_of_one_is_refused(device: &Device) {
    let group = ReplicaGroup::new(1);
    let sync = SyncBatchNorm::new(layer(device), group.member(0));
    let x = Tensor::<2>::from_data(TensorData::new(vec![1.0, 2.0, 3.0], [1, C]), device);
    let err = sync.try_forward(x).unwrap_err();
    assert_eq!(err.kind(), "TooFewValues");
    assert!(err.to_string().contains("global batch"), "{err}");
}
