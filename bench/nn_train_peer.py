"""nn_train_peer.py - PyTorch peer of bench/bench_nn_train.c: one training iteration (forward +
loss + backward + optimizer step) on CPU in f32 with the same configuration; prints, after one
warm-up, the median wall seconds and the median process CPU seconds (all threads) per iteration.
  segresnet: MONAI SegResNet(blocks 1,2,2,4 / 1,1,1), DiceCELoss(to_onehot_y, softmax), AdamW(1e-4, 1e-5)
  unet:      PlainConvUNet 4 stages (features F x 1,2,4,8, kernels 3, strides 1,2,2,2, 2 convs),
             nnU-Net DC_and_CE_loss + DeepSupervisionWrapper, SGD nesterov 0.99, clip_grad_norm_ 12
  usage: nn_train_peer.py segresnet|unet FEATURES D H W BATCH CLASSES ROUNDS THREADS"""
import sys
import time

import numpy as np
import torch

arch = sys.argv[1]
f, d, h, w, n, k, rounds, nt = map(int, sys.argv[2:])
torch.set_num_threads(nt)
torch.manual_seed(0)
x = torch.rand(n, 1, d, h, w) - 0.5
t = torch.randint(0, k, (n, 1, d, h, w))
if arch == "unet":
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    net = PlainConvUNet(1, 4, [f << s for s in range(4)], torch.nn.Conv3d, 3, [1, 2, 2, 2], 2, k, 2, conv_bias=True,
                        norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    wts = np.array([1, 0.5, 0.0])
    loss_fn = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False},
                                                    {}, 1, 1, None, MemoryEfficientSoftDiceLoss), wts / wts.sum())
    opt = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    tg = [t, t[:, :, 1::2, 1::2, 1::2], t[:, :, 2::4, 2::4, 2::4]]
else:
    from monai.losses import DiceCELoss
    from monai.networks.nets import SegResNet
    net = SegResNet(init_filters=f, in_channels=1, out_channels=k, blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.AdamW(net.parameters(), 1e-4, weight_decay=1e-5)


def step():
    opt.zero_grad(set_to_none=True)
    out = net(x)
    l = loss_fn(out, tg) if arch == "unet" else loss_fn(out, t.float())
    l.backward()
    if arch == "unet":
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
    opt.step()


step()
times, cpu = [], []
for _ in range(rounds):
    c0, t0 = time.process_time(), time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
times.sort(), cpu.sort()
print("%.4f %.4f" % (times[len(times) // 2], cpu[len(cpu) // 2]))
