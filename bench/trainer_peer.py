"""trainer_peer.py - the PyTorch peer of one train-unet iteration (bench/bench_trainer.sh): nnU-Net v2's
PlainConvUNet (dynamic_network_architectures) with deep supervision, DC_and_CE_loss wrapped in
DeepSupervisionWrapper (weights 1/2^i, lowest dropped, normalised), SGD Nesterov 0.99, lr 1e-2,
weight decay 3e-5, clip_grad_norm_ 12: as nnUNetTrainer.train_step on CPU in f32.

    trainer_peer.py FEATURES D,H,W BATCH ITERS THREADS   -> prints per iteration, one a line, the wall
    seconds and the process CPU seconds (all threads)
"""
import sys
import time

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss


def main():
    feats = [int(x) for x in sys.argv[1].split(",")]
    patch = [int(x) for x in sys.argv[2].split(",")]
    batch, iters, threads = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    classes = 3
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n = len(feats)
    net = PlainConvUNet(1, n, feats, torch.nn.Conv3d, 3, [1] + [2] * (n - 1), [2] * n, classes, [2] * (n - 1),
                        conv_bias=True, norm_op=torch.nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                        nonlin=torch.nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
    loss = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    w = np.array([1 / (2 ** i) for i in range(n - 1)])
    w[-1] = 0
    w = w / w.sum()
    loss = DeepSupervisionWrapper(loss, w)
    opt = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn([batch, 1] + patch, generator=g)
    y = torch.randint(0, classes, [batch, 1] + patch, generator=g)
    # targets per deep-supervision output, as nnU-Net's DownsampleSegForDSTransform (nearest)
    ys = [y]
    for s in range(1, n - 1):
        ys.append(y[:, :, ::2 ** s, ::2 ** s, ::2 ** s].contiguous())
    net.train()
    for it in range(iters + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        out = net(x)
        ls = loss(out, ys)
        ls.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        opt.step()
        if it:  # the first iteration warms up
            print("%.6f %.6f" % (time.perf_counter() - t0, time.process_time() - c0))


if __name__ == "__main__":
    main()
