// tests/gpu/emu/emu_rt.h - the whole CUDA backend on the CPU (tests/gpu/emulate.sh): the CUDA
// runtime and cuDNN calls the backend makes become host memory operations on a pretend device 0
// (device memory is host memory; allocations can be made to fail past a budget to test the
// out-of-memory paths), then lib/cuda's internal header, then the kernel emulation of emu.h. The
// convolutions (cuDNN) are replaced by emu_conv.cc (the reference ops), so this checks the
// backend's logic -- staging, layouts, in-place rules, errors, the device SegResNet and the
// sliding window -- with the test programs of tests/gpu, not cuDNN itself.
// Stream capture (CUDA graphs, lib/cuda/nn_cuda_graph.cu) is real: between
// cudaStreamBeginCapture and cudaStreamEndCapture on a thread, kernel launches, async copies and
// memsets and the convolutions are recorded, not run, and cudaGraphLaunch runs them in order;
// cudaMallocAsync there is a graph memory node (the memory is the graph's until it is destroyed;
// a graph that does not free all of it cannot be launched twice, as in CUDA),
// while what CUDA refuses inside a capture -- cudaMalloc, cudaFree, cudaHostAlloc, synchronising
// -- fails with cudaErrorStreamCaptureUnsupported and invalidates the capture. EMU_GRAPH_FAIL=conv
// makes the convolutions refuse capture (as a cuDNN call might), =instantiate cudaGraphInstantiate.
#pragma once
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdlib.h>
#include <string.h>
cudaError_t emu_malloc(void **p, size_t n);
cudaError_t emu_free(void *p);
cudaError_t emu_host_alloc(void **p, size_t n);
cudaError_t emu_ptr_attr(cudaPointerAttributes *a, const void *p);
cudaError_t emu_mem_info(size_t *f, size_t *t);
cudaError_t emu_props(cudaDeviceProp *p, int d);
cudaError_t emu_memcpy2d(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h);
cudaError_t emu_sync_malloc(void **p, size_t n);
cudaError_t emu_sync_free(void *p);
cudaError_t emu_sync_host_alloc(void **p, size_t n);
cudaError_t emu_malloc_async(void **p, size_t n);
cudaError_t emu_free_async(void *p);
cudaError_t emu_memcpy(void *d, const void *s, size_t n);
cudaError_t emu_memset(void *p, int v, size_t n);
cudaError_t emu_sync(void);
cudaError_t emu_begin_capture(void);
cudaError_t emu_end_capture(cudaGraph_t *g);
cudaError_t emu_graph_instantiate(cudaGraphExec_t *e, cudaGraph_t g);
cudaError_t emu_graph_launch(cudaGraphExec_t e);
cudaError_t emu_graph_nodes(cudaGraph_t g, size_t *n);
cudaError_t emu_graph_destroy(cudaGraph_t g);
cudaError_t emu_graph_exec_destroy(cudaGraphExec_t e);
#define cudaMalloc(p, n) emu_sync_malloc((void **)(p), n)
#define cudaMallocAsync(p, n, s) emu_malloc_async((void **)(p), n)
#define cudaHostAlloc(p, n, f) emu_sync_host_alloc((void **)(p), n)
#define cudaFree(p) emu_sync_free(p)
#define cudaFreeAsync(p, s) emu_free_async(p)
#define cudaFreeHost(p) emu_sync_free(p)
#define cudaMemcpyAsync(d, s, n, k, st) emu_memcpy(d, s, n)
#define cudaMemcpy2DAsync(d, dp, s, sp, w, h, k, st) emu_memcpy2d(d, dp, s, sp, w, h)
#define cudaMemsetAsync(p, v, n, s) emu_memset(p, v, n)
#define cudaSetDevice(d) cudaSuccess
#define cudaStreamSynchronize(s) emu_sync()
#define cudaDeviceSynchronize() emu_sync()
#define cudaStreamBeginCapture(s, m) emu_begin_capture()
#define cudaStreamEndCapture(s, g) emu_end_capture(g)
#define cudaGraphInstantiate(e, g, f) emu_graph_instantiate(e, g)
#define cudaGraphLaunch(e, s) emu_graph_launch(e)
#define cudaGraphGetNodes(g, nodes, n) emu_graph_nodes(g, n)
#define cudaGraphDestroy(g) emu_graph_destroy(g)
#define cudaGraphExecDestroy(e) emu_graph_exec_destroy(e)
#define cudaStreamCreateWithFlags(s, f) (*(s) = (cudaStream_t)1, cudaSuccess)
#define cudaEventCreateWithFlags(e, f) (*(e) = (cudaEvent_t)1, cudaSuccess)
#define cudaEventSynchronize(e) emu_sync()
#define cudaEventRecord(e, s) cudaSuccess
#define cudaEventDestroy(e) cudaSuccess
#define cudaStreamWaitEvent(s, e, f) cudaSuccess
#define cudaEventElapsedTime(ms, a, b) (*(ms) = 0.0f, cudaSuccess)
#define cudaGetDeviceCount(n) (*(n) = 1, cudaSuccess)
#define cudaGetLastError() cudaSuccess
#define cudaPointerGetAttributes(a, p) emu_ptr_attr(a, p)
#define cudaDeviceGetDefaultMemPool(p, d) (*(p) = (cudaMemPool_t)1, cudaSuccess)
#define cudaMemPoolSetAttribute(p, a, v) cudaSuccess
#define cudaMemPoolTrimTo(p, n) cudaSuccess
#define cudaMemPoolGetAttribute(p, a, v) (*(uint64_t *)(v) = 0, cudaSuccess)
#define cudaMemGetInfo(f, t) emu_mem_info(f, t)
#define cudaGetDeviceProperties(p, d) emu_props(p, d)
#define cudnnCreate(h) (*(h) = (cudnnHandle_t)1, CUDNN_STATUS_SUCCESS)
#define cudnnSetStream(h, s) CUDNN_STATUS_SUCCESS
#define cudnnGetVersion() ((size_t)91900)
#include "nn_cuda_int.h"
#include "emu.h"
