"""Reimplementation, in PyTorch, of what the golden files and converter need from nnU-Net v2 and
dynamic_network_architectures (neither package is in the venv): PlainConvUNet with the exact module
tree (so state_dict names are the real ones) and the sliding-window predictor functions
(compute_steps_for_sliding_window, compute_gaussian, pad_nd_image, mirroring TTA,
_internal_predict_sliding_window_return_logits), following the published sources line by line.
"""
import itertools

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch import nn


class ConvDropoutNormReLU(nn.Module):  # simple_conv_blocks.py (no dropout, nonlin_first False)
    def __init__(self, cin, cout, k, stride, bias, eps):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, k, stride, padding=[(i - 1) // 2 for i in k], dilation=1, bias=bias)
        self.norm = nn.InstanceNorm3d(cout, eps=eps, affine=True)
        self.nonlin = nn.LeakyReLU(0.01, inplace=True)
        self.all_modules = nn.Sequential(self.conv, self.norm, self.nonlin)

    def forward(self, x):
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, n, cin, cout, k, stride, bias, eps):
        super().__init__()
        self.convs = nn.Sequential(ConvDropoutNormReLU(cin, cout, k, stride, bias, eps),
                                   *[ConvDropoutNormReLU(cout, cout, k, 1, bias, eps) for _ in range(1, n)])

    def forward(self, x):
        return self.convs(x)


class PlainConvEncoder(nn.Module):  # pool='conv': each stage is Sequential(StackedConvBlocks)
    def __init__(self, cin, n_stages, feats, ks, strides, n_conv, bias, eps):
        super().__init__()
        stages = []
        for s in range(n_stages):
            stages.append(nn.Sequential(StackedConvBlocks(n_conv[s], cin, feats[s], ks[s], strides[s], bias, eps)))
            cin = feats[s]
        self.stages = nn.Sequential(*stages)
        self.output_channels, self.strides, self.kernel_sizes, self.conv_bias, self.eps = feats, strides, ks, bias, eps

    def forward(self, x):
        ret = []
        for s in self.stages:
            x = s(x)
            ret.append(x)
        return ret


class UNetDecoder(nn.Module):
    def __init__(self, encoder, num_classes, n_conv, deep_supervision=False):
        super().__init__()
        self.deep_supervision = deep_supervision
        self.encoder = encoder  # as in the original: its weights appear again under decoder.encoder.*
        ne = len(encoder.output_channels)
        stages, transpconvs, seg_layers = [], [], []
        for s in range(1, ne):
            below, skip = encoder.output_channels[-s], encoder.output_channels[-(s + 1)]
            st = encoder.strides[-s]
            transpconvs.append(nn.ConvTranspose3d(below, skip, st, st, bias=encoder.conv_bias))
            stages.append(StackedConvBlocks(n_conv[s - 1], 2 * skip, skip, encoder.kernel_sizes[-(s + 1)], 1,
                                            encoder.conv_bias, encoder.eps))
            seg_layers.append(nn.Conv3d(skip, num_classes, 1, 1, 0, bias=True))
        self.stages, self.transpconvs, self.seg_layers = nn.ModuleList(stages), nn.ModuleList(transpconvs), nn.ModuleList(seg_layers)

    def forward(self, skips):
        lres, seg = skips[-1], []
        for s in range(len(self.stages)):
            x = self.transpconvs[s](lres)
            x = torch.cat((x, skips[-(s + 2)]), 1)
            x = self.stages[s](x)
            if self.deep_supervision:
                seg.append(self.seg_layers[s](x))
            elif s == len(self.stages) - 1:
                seg.append(self.seg_layers[-1](x))
            lres = x
        seg = seg[::-1]
        return seg if self.deep_supervision else seg[0]


class PlainConvUNet(nn.Module):
    def __init__(self, input_channels, n_stages, features_per_stage, kernel_sizes, strides, n_conv_per_stage,
                 num_classes, n_conv_per_stage_decoder, conv_bias=True, eps=1e-5, deep_supervision=False):
        super().__init__()
        self.encoder = PlainConvEncoder(input_channels, n_stages, features_per_stage, kernel_sizes, strides,
                                        n_conv_per_stage, conv_bias, eps)
        self.decoder = UNetDecoder(self.encoder, num_classes, n_conv_per_stage_decoder, deep_supervision)

    def forward(self, x):
        return self.decoder(self.encoder(x))


# --- nnunetv2/inference/sliding_window_prediction.py and acvl_utils pad_nd_image ---

def compute_gaussian(tile_size, sigma_scale=1. / 8, value_scaling_factor=1, dtype=torch.float16):
    tmp = np.zeros(tile_size)
    center_coords = [i // 2 for i in tile_size]
    sigmas = [i * sigma_scale for i in tile_size]
    tmp[tuple(center_coords)] = 1
    g = gaussian_filter(tmp, sigmas, 0, mode='constant', cval=0)
    g = torch.from_numpy(g)
    g /= (torch.max(g) / value_scaling_factor)
    g = g.to(dtype=dtype)
    mask = g == 0
    g[mask] = torch.min(g[~mask])
    return g


def compute_steps_for_sliding_window(image_size, tile_size, tile_step_size):
    assert all(i >= j for i, j in zip(image_size, tile_size))
    target = [i * tile_step_size for i in tile_size]
    num_steps = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size)]
    steps = []
    for dim in range(len(tile_size)):
        max_step_value = image_size[dim] - tile_size[dim]
        actual = max_step_value / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


def pad_nd_image(image, new_shape):
    old_shape = np.array(image.shape)
    new_shape = list(image.shape[:len(image.shape) - len(new_shape)]) + list(new_shape)
    new_shape = np.max(np.vstack((np.array(new_shape), old_shape)), 0)
    diff = new_shape - old_shape
    below, above = diff // 2, diff // 2 + diff % 2
    pad = [list(i) for i in zip(below, above)]
    res = np.pad(image.numpy(), pad, 'constant', constant_values=0) if any(diff) else image.numpy()
    slicer = tuple(slice(b, b + s) for b, s in zip(below, old_shape))
    return torch.from_numpy(np.ascontiguousarray(res)), slicer


def maybe_mirror_and_predict(net, x, mirror_axes):
    prediction = net(x)
    if mirror_axes is not None:
        mirror_axes = [m + 2 for m in mirror_axes]
        combos = [c for i in range(len(mirror_axes)) for c in itertools.combinations(mirror_axes, i + 1)]
        for axes in combos:
            prediction += torch.flip(net(torch.flip(x, axes)), axes)
        prediction /= (len(combos) + 1)
    return prediction


@torch.no_grad()
def predict_sliding_window_return_logits(net, image, patch_size, num_classes, step=0.5, mirror_axes=None,
                                         dtype=torch.half):
    """image (C, D, H, W) float32; dtype torch.half is nnU-Net's own aggregation, float32 the exact variant."""
    data, revert = pad_nd_image(image, patch_size)
    steps = compute_steps_for_sliding_window(data.shape[1:], patch_size, step)
    slicers = [(slice(None), *[slice(s, s + t) for s, t in zip((sx, sy, sz), patch_size)])
               for sx in steps[0] for sy in steps[1] for sz in steps[2]]
    logits = torch.zeros((num_classes, *data.shape[1:]), dtype=dtype)
    n_pred = torch.zeros(data.shape[1:], dtype=dtype)
    gaussian = compute_gaussian(tuple(patch_size), 1. / 8, 10, dtype=dtype)
    for sl in slicers:
        pred = maybe_mirror_and_predict(net, data[sl][None], mirror_axes)[0]
        pred *= gaussian
        logits[sl] += pred
        n_pred[sl[1:]] += gaussian
    torch.div(logits, n_pred, out=logits)
    return logits[(slice(None), *revert[1:])]
