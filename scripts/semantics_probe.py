"""Probe PyTorch normalization-layer semantics. Every claim in the README's semantics
table is backed by a section of this script's output (scripts/semantics_probe.out).

Run:  venv/bin/python scripts/semantics_probe.py > scripts/semantics_probe.out 2>&1
"""
import inspect
import math
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_printoptions(precision=10)
torch.manual_seed(0)
warnings.simplefilter("always")

print("torch", torch.__version__)


def section(title):
    print()
    print("=" * 78)
    print("##", title)
    print("=" * 78)


def attempt(label, fn):
    """Run fn, print result or the exact exception type + message, plus warnings."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            r = fn()
            print(f"[{label}] OK -> {r}")
        except Exception as e:  # noqa: BLE001
            print(f"[{label}] {type(e).__name__}: {e}")
        for ww in w:
            print(f"[{label}]   warning {ww.category.__name__}: {ww.message}")


# ---------------------------------------------------------------------------
section("1. Constructor signatures and defaults")
for cls in [nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
            nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d]:
    print(f"{cls.__name__}{inspect.signature(cls.__init__)}")

print()
for name, m in [("BatchNorm2d(3)", nn.BatchNorm2d(3)),
                ("LayerNorm(5)", nn.LayerNorm(5)),
                ("GroupNorm(2,4)", nn.GroupNorm(2, 4)),
                ("InstanceNorm1d(3)", nn.InstanceNorm1d(3)),
                ("InstanceNorm2d(3)", nn.InstanceNorm2d(3))]:
    attrs = {k: getattr(m, k) for k in ["eps", "momentum", "affine",
                                        "track_running_stats", "elementwise_affine",
                                        "num_groups", "normalized_shape"] if hasattr(m, k)}
    params = {k: (tuple(v.shape), v.detach().flatten()[:4].tolist()) for k, v in m.named_parameters()}
    bufs = {k: (None if v is None else (tuple(v.shape), str(v.dtype), v.flatten()[:4].tolist()))
            for k, v in m.named_buffers()}
    print(f"{name}: {attrs}")
    print(f"    params={params}")
    print(f"    buffers={bufs}")
    print(f"    running_mean attr = {getattr(m, 'running_mean', 'n/a')}")
m = nn.LayerNorm(5, bias=False)
print("LayerNorm(5, bias=False) params:", [k for k, _ in m.named_parameters()])
m = nn.BatchNorm1d(3, track_running_stats=False)
print("BatchNorm1d(3, track_running_stats=False): running_mean =", m.running_mean,
      "running_var =", m.running_var, "num_batches_tracked =", m.num_batches_tracked)

# ---------------------------------------------------------------------------
section("2. BatchNorm training forward: biased var for normalisation, UNBIASED var for running_var")
x = torch.tensor([[1.0, 2.0, 0.5],
                  [3.0, -1.0, 0.5],
                  [5.0, 4.0, 2.0],
                  [7.0, 0.0, 1.0]], dtype=torch.float64)
bn = nn.BatchNorm1d(3, momentum=0.1).double()
y = bn(x)
mean = x.mean(0)
var_b = x.var(0, unbiased=False)
var_u = x.var(0, unbiased=True)
print("x =\n", x)
print("batch mean            =", mean.tolist())
print("batch var biased (/N) =", var_b.tolist())
print("batch var unbiased (/(N-1)) =", var_u.tolist())
print("y (torch)             =\n", y.detach())
y_ref = (x - mean) / torch.sqrt(var_b + 1e-5)
print("max|y - (x-mean)/sqrt(var_biased+eps)| =", (y - y_ref).abs().max().item())
y_ref_u = (x - mean) / torch.sqrt(var_u + 1e-5)
print("max|y - (x-mean)/sqrt(var_unbiased+eps)| =", (y - y_ref_u).abs().max().item(), "(i.e. NOT unbiased)")
print("running_mean after 1 step =", bn.running_mean.tolist())
print("  expected 0.9*0 + 0.1*mean        =", (0.1 * mean).tolist())
print("running_var after 1 step  =", bn.running_var.tolist())
print("  0.9*1 + 0.1*var_unbiased         =", (0.9 + 0.1 * var_u).tolist())
print("  0.9*1 + 0.1*var_biased (WRONG)   =", (0.9 + 0.1 * var_b).tolist())
print("num_batches_tracked =", bn.num_batches_tracked.item())

x2 = torch.tensor([[0.0, 1.0, 1.0],
                   [2.0, 1.0, 3.0],
                   [-2.0, 5.0, 3.0],
                   [4.0, 1.0, 1.0]], dtype=torch.float64)
rm1, rv1 = bn.running_mean.clone(), bn.running_var.clone()
bn(x2)
print("step 2: running_mean =", bn.running_mean.tolist(),
      " expected", (0.9 * rm1 + 0.1 * x2.mean(0)).tolist())
print("step 2: running_var  =", bn.running_var.tolist(),
      " expected", (0.9 * rv1 + 0.1 * x2.var(0, unbiased=True)).tolist())
print("num_batches_tracked =", bn.num_batches_tracked.item())

print("\nBatchNorm1d on (N,C,L): statistics over N and L (n = N*L per channel)")
x3 = torch.randn(4, 3, 5, dtype=torch.float64) * 2 + 1
bn = nn.BatchNorm1d(3).double()
y3 = bn(x3)
m3 = x3.mean((0, 2))
vb3 = x3.var((0, 2), unbiased=False)
vu3 = x3.var((0, 2), unbiased=True)
print("max|y - ref| =", (y3 - (x3 - m3[None, :, None]) / torch.sqrt(vb3[None, :, None] + 1e-5)).abs().max().item())
print("running_var =", bn.running_var.tolist())
print("0.9+0.1*var_u (n=20, factor 20/19) =", (0.9 + 0.1 * vu3).tolist())

print("\nBatchNorm2d (N,C,H,W): n = N*H*W; BatchNorm3d: n = N*D*H*W")
for shape, cls, dims in [((2, 3, 4, 4), nn.BatchNorm2d, (0, 2, 3)), ((2, 3, 2, 3, 3), nn.BatchNorm3d, (0, 2, 3, 4))]:
    xx = torch.randn(*shape, dtype=torch.float64)
    b = cls(3, momentum=0.3).double()
    b(xx)
    print(cls.__name__, shape, "running_var - (0.7+0.3*var_unbiased) =",
          (b.running_var - (0.7 + 0.3 * xx.var(dims, unbiased=True))).abs().max().item(),
          " running_mean - 0.3*mean =", (b.running_mean - 0.3 * xx.mean(dims)).abs().max().item())

# ---------------------------------------------------------------------------
section("3. momentum edge values: 0.0 (frozen), 1.0 (last batch), None (cumulative average)")
xs = [torch.randn(6, 2, dtype=torch.float64) * (i + 1) + i for i in range(3)]
for mom in [0.0, 1.0]:
    b = nn.BatchNorm1d(2, momentum=mom).double()
    for xi in xs:
        b(xi)
    print(f"momentum={mom}: running_mean={b.running_mean.tolist()} running_var={b.running_var.tolist()} nbt={b.num_batches_tracked.item()}")
print("   last batch mean =", xs[-1].mean(0).tolist(), " last batch var_unbiased =", xs[-1].var(0).tolist())

b = nn.BatchNorm1d(2, momentum=None).double()
for k, xi in enumerate(xs, 1):
    b(xi)
    cm = torch.stack([t.mean(0) for t in xs[:k]]).mean(0)
    cv = torch.stack([t.var(0) for t in xs[:k]]).mean(0)
    print(f"momentum=None after step {k}: nbt={b.num_batches_tracked.item()} "
          f"running_mean={b.running_mean.tolist()} (mean of batch means {cm.tolist()}) "
          f"running_var={b.running_var.tolist()} (mean of unbiased batch vars {cv.tolist()})")
print("=> exponential_average_factor = 1/num_batches_tracked (after increment): "
      "first step overwrites the init (0/1) completely.")

b = nn.BatchNorm1d(2, momentum=None).double()
b.running_mean.fill_(10.0)
b.running_var.fill_(10.0)
b(xs[0])
print("momentum=None, init running stats 10: after 1 step running_mean =", b.running_mean.tolist(),
      "== batch mean", xs[0].mean(0).tolist())

print("\nnum_batches_tracked increments in train mode even with float momentum; not in eval:")
b = nn.BatchNorm1d(2).double()
b(xs[0]); b(xs[1])
b.eval(); b(xs[2])
print("  after 2 train + 1 eval forward: nbt =", b.num_batches_tracked.item(), "dtype", b.num_batches_tracked.dtype)

# ---------------------------------------------------------------------------
section("4. eval mode: uses running stats; track_running_stats=False uses batch stats in eval too")
b = nn.BatchNorm1d(3).double()
b.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
b.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
with torch.no_grad():
    b.weight.copy_(torch.tensor([2.0, 1.0, -1.0]))
    b.bias.copy_(torch.tensor([0.5, 0.0, 1.0]))
b.eval()
xe = torch.tensor([[3.0, 0.0, 0.5], [1.0, -1.0, 2.5]], dtype=torch.float64)
ye = b(xe)
ref = (xe - b.running_mean) / torch.sqrt(b.running_var + 1e-5) * b.weight + b.bias
print("eval y =", ye.detach().tolist())
print("max|y - ((x-rm)/sqrt(rv+eps)*w+b)| =", (ye - ref).abs().max().item())
print("running stats unchanged:", b.running_mean.tolist(), b.running_var.tolist(), "nbt", b.num_batches_tracked.item())
attempt("eval, single sample (1,3) with track_running_stats=True", lambda: b(xe[:1]).detach().tolist())

b2 = nn.BatchNorm1d(3, track_running_stats=False).double()
b2.eval()
yb = b2(xe)
print("track_running_stats=False, eval: y =", yb.detach().tolist())
print("  equals batch-stat normalisation:", torch.allclose(yb, (xe - xe.mean(0)) / torch.sqrt(xe.var(0, unbiased=False) + 1e-5)))
print("  running_mean still", b2.running_mean)
attempt("track_running_stats=False, eval, single sample (1,3)", lambda: b2(xe[:1]))

print("\nbuffers present but track_running_stats flipped to False AFTER construction (PyTorch quirk):")
b3 = nn.BatchNorm1d(3).double()
b3.running_mean.fill_(100.0)
b3.track_running_stats = False
b3.eval()
y3e = b3(xe)
print("  eval y =", y3e.detach().tolist())
print("  eval uses running buffers (mean 100, var 1)?",
      torch.allclose(y3e, (xe - 100.0) / math.sqrt(1 + 1e-5)),
      "; uses batch stats?", torch.allclose(y3e, (xe - xe.mean(0)) / torch.sqrt(xe.var(0, unbiased=False) + 1e-5)))
b3.train()
b3(xe)
print("  after a train forward: running_mean =", b3.running_mean.tolist(), "nbt =", b3.num_batches_tracked.item(),
      "(not updated: None is passed to F.batch_norm in training when track_running_stats=False)")

# ---------------------------------------------------------------------------
section("5. Accepted input ranks and error messages")
bn1, bn2, bn3 = nn.BatchNorm1d(3), nn.BatchNorm2d(3), nn.BatchNorm3d(3)
attempt("BatchNorm1d (4,3)", lambda: tuple(bn1(torch.randn(4, 3)).shape))
attempt("BatchNorm1d (4,3,5)", lambda: tuple(bn1(torch.randn(4, 3, 5)).shape))
attempt("BatchNorm1d (3,) 1D", lambda: bn1(torch.randn(3)))
attempt("BatchNorm1d (2,3,4,4) 4D", lambda: bn1(torch.randn(2, 3, 4, 4)))
attempt("BatchNorm2d (2,3,4) 3D", lambda: bn2(torch.randn(2, 3, 4)))
attempt("BatchNorm2d (3,4,4) unbatched 3D", lambda: bn2(torch.randn(3, 4, 4)))
attempt("BatchNorm2d (2,3,4,4,4) 5D", lambda: bn2(torch.randn(2, 3, 4, 4, 4)))
attempt("BatchNorm3d (2,3,4,4) 4D", lambda: bn3(torch.randn(2, 3, 4, 4)))
attempt("BatchNorm3d (2,3,2,3,3)", lambda: tuple(bn3(torch.randn(2, 3, 2, 3, 3)).shape))

print("\n-- wrong channel count --")
attempt("BatchNorm1d(3) on (4,4)", lambda: bn1(torch.randn(4, 4)))
attempt("BatchNorm1d(3) on (4,2,5)", lambda: bn1(torch.randn(4, 2, 5)))
attempt("BatchNorm2d(3) on (2,4,5,5)", lambda: bn2(torch.randn(2, 4, 5, 5)))
attempt("BatchNorm2d(3) on (2,4,5,5) eval", lambda: bn2.eval()(torch.randn(2, 4, 5, 5)))
bn2.train()
attempt("BatchNorm2d(3,track_running_stats=False) on (2,4,5,5)",
        lambda: nn.BatchNorm2d(3, track_running_stats=False)(torch.randn(2, 4, 5, 5)))
attempt("BatchNorm2d(3,affine=False,track_running_stats=False) on (2,4,5,5)",
        lambda: tuple(nn.BatchNorm2d(3, affine=False, track_running_stats=False)(torch.randn(2, 4, 5, 5)).shape))

print("\n-- batch of 1 in training mode --")
attempt("BatchNorm1d train (1,3)", lambda: nn.BatchNorm1d(3)(torch.randn(1, 3)))
attempt("BatchNorm1d train (1,3,1)", lambda: nn.BatchNorm1d(3)(torch.randn(1, 3, 1)))
attempt("BatchNorm1d train (1,3,5) (N=1 but L=5)", lambda: tuple(nn.BatchNorm1d(3)(torch.randn(1, 3, 5)).shape))
attempt("BatchNorm2d train (1,3,1,1)", lambda: nn.BatchNorm2d(3)(torch.randn(1, 3, 1, 1)))
attempt("BatchNorm2d train (1,3,2,1)", lambda: tuple(nn.BatchNorm2d(3)(torch.randn(1, 3, 2, 1)).shape))
attempt("BatchNorm3d train (1,3,1,1,1)", lambda: nn.BatchNorm3d(3)(torch.randn(1, 3, 1, 1, 1)))
attempt("BatchNorm1d eval (1,3)", lambda: nn.BatchNorm1d(3).eval()(torch.randn(1, 3)).shape)
attempt("F.batch_norm training=True (1,3) no running stats",
        lambda: F.batch_norm(torch.randn(1, 3), None, None, training=True))
attempt("BatchNorm1d train (0,3) empty batch", lambda: tuple(nn.BatchNorm1d(3)(torch.randn(0, 3)).shape))
bz = nn.BatchNorm1d(3)
bz(torch.randn(0, 3))
print("   after empty batch: running_mean", bz.running_mean.tolist(), "running_var", bz.running_var.tolist(), "nbt", bz.num_batches_tracked.item())

print("\n-- BatchNorm with N=1, L=2 (n=2): unbiased factor 2/1 --")
b = nn.BatchNorm1d(1, momentum=1.0).double()
b(torch.tensor([[[1.0, 3.0]]], dtype=torch.float64))
print("   x=[1,3]: biased var=1, unbiased var=2 -> running_var =", b.running_var.tolist())

# ---------------------------------------------------------------------------
section("6. NaN / Inf inputs")
xn = torch.tensor([[1.0, 2.0], [float("nan"), 3.0], [2.0, 5.0], [4.0, 1.0]], dtype=torch.float64)
b = nn.BatchNorm1d(2).double()
yn = b(xn)
print("train, NaN at [1,0]: y =", yn.detach().tolist())
print("   running_mean =", b.running_mean.tolist(), "running_var =", b.running_var.tolist())
b.eval()
b.running_mean.fill_(0.0); b.running_var.fill_(1.0)
print("eval (clean running stats), NaN at [1,0]: y =", b(xn).detach().tolist())
xi = torch.tensor([[1.0, 2.0], [float("inf"), 3.0], [2.0, 5.0], [4.0, 1.0]], dtype=torch.float64)
b = nn.BatchNorm1d(2).double()
print("train, +inf at [1,0]: y =", b(xi).detach().tolist())
print("   running_mean =", b.running_mean.tolist(), "running_var =", b.running_var.tolist())
b.eval(); b.running_mean.fill_(0.0); b.running_var.fill_(1.0)
print("eval, +inf at [1,0]: y =", b(xi).detach().tolist())
print("LayerNorm(2), NaN in row 1:", nn.LayerNorm(2).double()(xn).detach().tolist())
print("GroupNorm(1,2) on (4,2), NaN at [1,0]:", nn.GroupNorm(1, 2).double()(xn).detach().tolist())
xbig = torch.tensor([[1e30, 2.0], [-1e30, 3.0]], dtype=torch.float32)
print("float32 BatchNorm1d train with +-1e30 (var overflows to inf):", nn.BatchNorm1d(2)(xbig).detach().tolist())
print("constant channel (var=0): ", nn.BatchNorm1d(1).double()(torch.full((4, 1), 3.0, dtype=torch.float64)).detach().flatten().tolist(),
      "-> (x-mean)=0 so y = bias (0); no NaN because eps>0")
attempt("constant channel, eps=0, train", lambda: nn.BatchNorm1d(1, eps=0.0).double()(torch.full((4, 1), 3.0, dtype=torch.float64)).detach().flatten().tolist())
attempt("eps=0, eval", lambda: nn.BatchNorm1d(1, eps=0.0).double().eval()(torch.full((4, 1), 3.0, dtype=torch.float64)).detach().flatten().tolist())
attempt("eps=-1 constructor", lambda: nn.BatchNorm1d(1, eps=-1.0))

# ---------------------------------------------------------------------------
section("7. LayerNorm")
ln = nn.LayerNorm(5).double()
xl = torch.randn(4, 3, 5, dtype=torch.float64) * 3 + 1
yl = ln(xl)
ref = (xl - xl.mean(-1, keepdim=True)) / torch.sqrt(xl.var(-1, unbiased=False, keepdim=True) + 1e-5)
print("LayerNorm(5) on (4,3,5): max|y - (x-mean)/sqrt(var_biased+eps)| =", (yl - ref).abs().max().item())
ln2 = nn.LayerNorm((3, 5)).double()
yl2 = ln2(xl)
ref2 = (xl - xl.mean((-2, -1), keepdim=True)) / torch.sqrt(xl.var((-2, -1), unbiased=False, keepdim=True) + 1e-5)
print("LayerNorm((3,5)) on (4,3,5): max|y-ref| =", (yl2 - ref2).abs().max().item(), " weight shape", tuple(ln2.weight.shape))
print("LayerNorm same output in train and eval:", torch.equal(ln.train()(xl), ln.eval()(xl)))
attempt("LayerNorm(5) on (4,3,4)", lambda: ln(torch.randn(4, 3, 4, dtype=torch.float64)))
attempt("LayerNorm((3,5)) on (4,5,3)", lambda: ln2(torch.randn(4, 5, 3, dtype=torch.float64)))
attempt("LayerNorm(5) on (5,) 1D", lambda: tuple(ln(torch.randn(5, dtype=torch.float64)).shape))
attempt("LayerNorm((3,5)) on (5,) too few dims", lambda: ln2(torch.randn(5, dtype=torch.float64)))
attempt("LayerNorm(1) on (4,1) (single element -> y=bias)", lambda: nn.LayerNorm(1)(torch.randn(4, 1)).detach().flatten().tolist())

# ---------------------------------------------------------------------------
section("8. GroupNorm")
attempt("GroupNorm(4, 6) constructor", lambda: nn.GroupNorm(4, 6))
attempt("GroupNorm(0, 6) constructor", lambda: nn.GroupNorm(0, 6))
attempt("F.group_norm(x(2,6,4), 4)", lambda: F.group_norm(torch.randn(2, 6, 4), 4))
gn = nn.GroupNorm(2, 6).double()
attempt("GroupNorm(2,6) on (2,4,5) wrong C but divisible", lambda: gn(torch.randn(2, 4, 5, dtype=torch.float64)))
attempt("GroupNorm(2,6) on (2,5,5) wrong C not divisible", lambda: gn(torch.randn(2, 5, 5, dtype=torch.float64)))
attempt("GroupNorm(2,6) on (6,) 1D", lambda: gn(torch.randn(6, dtype=torch.float64)))
attempt("GroupNorm(2,6) on (4,6) 2D", lambda: tuple(gn(torch.randn(4, 6, dtype=torch.float64)).shape))
attempt("GroupNorm(2,6) on (2,6,3,3,3) 5D", lambda: tuple(gn(torch.randn(2, 6, 3, 3, 3, dtype=torch.float64)).shape))
attempt("GroupNorm(6,6) on (1,6) (one elem per group)", lambda: gn.__class__(6, 6)(torch.randn(1, 6)).detach().tolist())
attempt("GroupNorm(6,6) on (4,6) (one elem per group, but N*C/G*spatial=4>1)", lambda: nn.GroupNorm(6, 6)(torch.randn(4, 6)).detach()[0].tolist())
attempt("GroupNorm(2,2) on (1,2)", lambda: nn.GroupNorm(2, 2)(torch.randn(1, 2)))
attempt("GroupNorm(2,2) on (1,2) in eval()", lambda: nn.GroupNorm(2, 2).eval()(torch.randn(1, 2)))
attempt("GroupNorm(1,2) on (1,2)", lambda: nn.GroupNorm(1, 2)(torch.tensor([[1.0, 3.0]])).detach().tolist())
attempt("GroupNorm(2,6) on (1,6,1) N=1", lambda: tuple(gn(torch.randn(1, 6, 1, dtype=torch.float64)).shape))
xg = torch.randn(2, 6, 4, 4, dtype=torch.float64) * 2 + 1
with torch.no_grad():
    gn.weight.copy_(torch.arange(1.0, 7.0))
    gn.bias.copy_(torch.arange(6.0) * 0.1)
yg = gn(xg)
xr = xg.reshape(2, 2, -1)
ref = ((xr - xr.mean(-1, keepdim=True)) / torch.sqrt(xr.var(-1, unbiased=False, keepdim=True) + 1e-5)).reshape_as(xg)
ref = ref * gn.weight[None, :, None, None] + gn.bias[None, :, None, None]
print("GroupNorm(2,6) on (2,6,4,4): max|y - ref(biased var over (C/G,H,W), per-channel affine)| =", (yg - ref).abs().max().item())
print("GroupNorm has no running stats; buffers:", list(dict(gn.named_buffers()).keys()), "; same in eval:", torch.equal(gn.eval()(xg), yg))

# ---------------------------------------------------------------------------
section("9. InstanceNorm")
inn = nn.InstanceNorm1d(3)
print("InstanceNorm1d(3): affine", inn.affine, "track_running_stats", inn.track_running_stats,
      "eps", inn.eps, "momentum", inn.momentum, "params", list(dict(inn.named_parameters()).keys()),
      "running_mean", inn.running_mean)
xi1 = torch.randn(4, 3, 5, dtype=torch.float64) * 2 + 1
yi1 = inn.double()(xi1)
ref = (xi1 - xi1.mean(-1, keepdim=True)) / torch.sqrt(xi1.var(-1, unbiased=False, keepdim=True) + 1e-5)
print("InstanceNorm1d on (4,3,5): max|y - ref(per (n,c) over L, biased)| =", (yi1 - ref).abs().max().item())
print("eval == train (no running stats):", torch.equal(inn.eval()(xi1), yi1))
attempt("InstanceNorm1d(3) unbatched (3,5)", lambda: tuple(nn.InstanceNorm1d(3)(torch.randn(3, 5)).shape))
attempt("InstanceNorm1d(3) on (4,3) 2D treated as unbatched (C=4,L=3)!", lambda: tuple(nn.InstanceNorm1d(3)(torch.randn(4, 3)).shape))
attempt("InstanceNorm1d(3) on (4,3,1) L=1", lambda: nn.InstanceNorm1d(3)(torch.randn(4, 3, 1)))
attempt("InstanceNorm1d(3) on (3,) 1D", lambda: nn.InstanceNorm1d(3)(torch.randn(3)))
attempt("InstanceNorm1d(3) on (2,3,4,4) 4D", lambda: nn.InstanceNorm1d(3)(torch.randn(2, 3, 4, 4)))
attempt("InstanceNorm2d(3) on (3,4,4) unbatched", lambda: tuple(nn.InstanceNorm2d(3)(torch.randn(3, 4, 4)).shape))
attempt("InstanceNorm2d(3) on (2,3) 2D", lambda: nn.InstanceNorm2d(3)(torch.randn(2, 3)))
attempt("InstanceNorm2d(3) on (2,3,1,1)", lambda: nn.InstanceNorm2d(3)(torch.randn(2, 3, 1, 1)))
attempt("InstanceNorm2d(3) affine=False on (2,4,5,5) wrong C", lambda: tuple(nn.InstanceNorm2d(3)(torch.randn(2, 4, 5, 5)).shape))
attempt("InstanceNorm2d(3, affine=True) on (2,4,5,5) wrong C", lambda: nn.InstanceNorm2d(3, affine=True)(torch.randn(2, 4, 5, 5)))
attempt("InstanceNorm2d(3, track_running_stats=True) on (2,4,5,5) wrong C",
        lambda: nn.InstanceNorm2d(3, track_running_stats=True)(torch.randn(2, 4, 5, 5)))

print("\nInstanceNorm with track_running_stats=True: running update = average over N of per-instance stats")
it = nn.InstanceNorm1d(3, track_running_stats=True, momentum=0.1).double()
it(xi1)
per_mean = xi1.mean(-1)                 # (N,C)
per_var_u = xi1.var(-1, unbiased=True)  # (N,C)
print("  running_mean           =", it.running_mean.tolist())
print("  0.1*mean_n(inst mean)  =", (0.1 * per_mean.mean(0)).tolist())
print("  running_var            =", it.running_var.tolist())
print("  0.9+0.1*mean_n(inst var unbiased, L/(L-1)) =", (0.9 + 0.1 * per_var_u.mean(0)).tolist())
print("  num_batches_tracked    =", it.num_batches_tracked.item())
it.eval()
ye = it(xi1)
refe = (xi1 - it.running_mean[None, :, None]) / torch.sqrt(it.running_var[None, :, None] + 1e-5)
print("  eval uses running stats: max|y-ref| =", (ye - refe).abs().max().item())
attempt("InstanceNorm1d(track_running_stats=True) eval on (1,3,1)", lambda: tuple(it(torch.randn(1, 3, 1, dtype=torch.float64)).shape))
itn = nn.InstanceNorm1d(3, track_running_stats=True, momentum=None).double()
itn(xi1); itn(xi1 * 2)
print("  momentum=None InstanceNorm: running_mean =", itn.running_mean.tolist(), "running_var =", itn.running_var.tolist(),
      "nbt =", itn.num_batches_tracked.item(),
      "-> momentum None is passed as 0.0 to F.instance_norm: running stats NEVER move (unlike BatchNorm's cumulative average)")

# ---------------------------------------------------------------------------
section("10. Eval-mode gradient of BatchNorm (running stats are constants)")
b = nn.BatchNorm1d(3).double()
b.running_mean.copy_(torch.tensor([1.0, -1.0, 0.5]))
b.running_var.copy_(torch.tensor([4.0, 0.25, 1.0]))
b.eval()
xe = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
g = torch.randn(4, 3, dtype=torch.float64)
(b(xe) * g).sum().backward()
print("dx - g*w/sqrt(rv+eps) =", (xe.grad - g * b.weight.detach() / torch.sqrt(b.running_var + 1e-5)).abs().max().item())

section("11. Train-mode BatchNorm gradient formula check")
b = nn.BatchNorm1d(3).double()
with torch.no_grad():
    b.weight.copy_(torch.tensor([1.5, -0.5, 2.0])); b.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
xt = (torch.randn(4, 3, 5, dtype=torch.float64) * 2 + 1).requires_grad_()
g = torch.randn(4, 3, 5, dtype=torch.float64)
(b(xt) * g).sum().backward()
n = 4 * 5
mu = xt.detach().mean((0, 2), keepdim=True)
var = xt.detach().var((0, 2), unbiased=False, keepdim=True)
inv = 1 / torch.sqrt(var + 1e-5)
xhat = (xt.detach() - mu) * inv
dbeta = g.sum((0, 2))
dgamma = (g * xhat).sum((0, 2))
dx = b.weight.detach()[None, :, None] * inv / n * (n * g - dbeta[None, :, None] - xhat * dgamma[None, :, None])
print("dx   formula err =", (xt.grad - dx).abs().max().item())
print("dgamma formula err =", (b.weight.grad - dgamma).abs().max().item(), " dbeta err =", (b.bias.grad - dbeta).abs().max().item())
print("formula: dx = gamma*invstd/n * (n*g - sum(g) - xhat*sum(g*xhat)), sums over (N, spatial) per channel")

section("12. float32 kernels vs float64 reference (guides Rust f32 tolerances)")
for label, mk, shape in [("BatchNorm2d(16) train", lambda: nn.BatchNorm2d(16), (128, 16, 8, 8)),
                         ("BatchNorm2d(64) train", lambda: nn.BatchNorm2d(64), (32, 64, 32, 32)),
                         ("LayerNorm(256)", lambda: nn.LayerNorm(256), (512, 256)),
                         ("GroupNorm(8,64)", lambda: nn.GroupNorm(8, 64), (8, 64, 32, 32))]:
    m32 = mk(); m64 = mk().double()
    x64 = torch.randn(*shape, dtype=torch.float64) * 3 + 2
    g64 = torch.randn(*shape, dtype=torch.float64)
    x32 = x64.float().requires_grad_(); x64r = x64.clone().requires_grad_()
    y32 = m32(x32); y64 = m64(x64r)
    (y32 * g64.float()).sum().backward(); (y64 * g64).sum().backward()
    e_y = (y32.double() - y64).abs().max().item()
    e_dx = ((x32.grad.double() - x64r.grad).abs().max() / x64r.grad.abs().max()).item()
    e_dw = ((m32.weight.grad.double() - m64.weight.grad).abs().max() / m64.weight.grad.abs().max()).item()
    extra = ""
    if hasattr(m32, "running_var") and m32.running_var is not None:
        extra = f" running_var max rel err {((m32.running_var.double() - m64.running_var).abs() / m64.running_var).max().item():.2e}"
    print(f"{label:24s} {str(shape):18s} max|y32-y64| {e_y:.2e}  dx max err/max|dx| {e_dx:.2e}  dw rel {e_dw:.2e}{extra}")
x = torch.tensor([[0.3, 1.7, -2.2, 5.1]], dtype=torch.float32).repeat(3, 1)
print("GroupNorm(4,4) float32 on 1-element groups (exact answer 0):", nn.GroupNorm(4, 4)(x)[0].tolist(),
      "-> CPU kernel computes y = x*(w*rstd) + (b - mean*w*rstd) (fused), rstd=1/sqrt(eps)=316")

attempt("InstanceNorm1d(3) default, eval(), on (4,3,1)", lambda: nn.InstanceNorm1d(3).eval()(torch.randn(4, 3, 1)))

print("\nDONE")
