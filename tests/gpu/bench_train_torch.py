"""bench_train_torch.py - PyTorch side of the GPU training benchmark (tests/gpu/check_train.sh): one
training iteration (zero_grad, forward, loss, backward, [unscale, clip,] optimizer step) on one GPU
with automatic mixed precision (torch.autocast bf16, or f16 with torch.cuda.amp.GradScaler) and
channels_last_3d model and input, the configurations of bench/nn_train_peer.py:
  segresnet: MONAI SegResNet(init F, blocks 1,2,2,4 / 1,1,1), DiceCELoss(to_onehot_y, softmax), AdamW(1e-4, 1e-5)
  unet:      PlainConvUNet 4 stages (F x 1,2,4,8, kernels 3, strides 1,2,2,2, 2 convs), nnU-Net
             DC_and_CE_loss + DeepSupervisionWrapper, SGD nesterov 0.99, clip_grad_norm_ 12
Prints the median seconds per iteration (CUDA-synchronised) after 3 warm-up iterations, and the
peak device memory (torch.cuda.max_memory_allocated).
  usage: bench_train_torch.py segresnet|unet F SIZE BATCH CLASSES ROUNDS [bf16|f16|f32]"""
import os
import sys
import time

import numpy as np
import torch

arch = sys.argv[1]
f, size, n, k, rounds = map(int, sys.argv[2:7])
prec = sys.argv[7] if len(sys.argv) > 7 else "bf16"
dev = torch.device(os.environ.get("BENCH_DEVICE", "cuda"))  # BENCH_DEVICE=cpu: a dry run of this script
torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
cl = torch.channels_last_3d
x = (torch.rand(n, 1, size, size, size, device=dev) - 0.5).to(memory_format=cl)
t = torch.randint(0, k, (n, 1, size, size, size), device=dev)
try:
    if arch == "unet":
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
        from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
        from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    else:
        from monai.losses import DiceCELoss
        from monai.networks.nets import SegResNet
except ImportError as e:  # the device image has no monai/nnunetv2: tests/gpu/pack.sh packs their wheels
    sys.exit("bench_train_torch.py: error: %s (needs monai for segresnet, nnunetv2 and dynamic_network_architectures "
             "for unet: .venv here; on the device machine the wheels of .gpupack, installed by tests/gpu/device_check.sh)" % e)
if arch == "unet":
    net = PlainConvUNet(1, 4, [f << s for s in range(4)], torch.nn.Conv3d, 3, [1, 2, 2, 2], 2, k, 2, conv_bias=True,
                        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    wts = np.array([1, 0.5, 0.0])  # 3 outputs: 1/2^i, the lowest 0 (nnU-Net)
    loss_fn = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False},
                                                    {}, 1, 1, None, MemoryEfficientSoftDiceLoss), wts / wts.sum())
    net = net.to(dev).to(memory_format=cl)
    opt = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    tg = [t, t[:, :, 1::2, 1::2, 1::2], t[:, :, 2::4, 2::4, 2::4]]
else:
    net = SegResNet(init_filters=f, in_channels=1, out_channels=k, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))
    net = net.to(dev).to(memory_format=cl)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), 1e-4, weight_decay=1e-5)
dtype = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}[prec]
scaler = torch.amp.GradScaler(dev.type, enabled=prec == "f16")
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)


def step():
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, dtype=dtype, enabled=prec != "f32"):
        out = net(x)
        l = loss_fn(out, tg) if arch == "unet" else loss_fn(out, t.float())
    scaler.scale(l).backward()
    if arch == "unet":
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
    scaler.step(opt)
    scaler.update()


for _ in range(3):
    step()
sync()
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - t0)
times.sort()
peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else float("nan")
print("%.5f %.1f" % (times[len(times) // 2], peak))
