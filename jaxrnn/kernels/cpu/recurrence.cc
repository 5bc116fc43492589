// The sequential part of a float32 LSTM, GRU or Elman layer on the CPU: all T steps of the forward
// recurrence, or of its backward, in ONE XLA FFI call (jaxrnn/kernels/cpu_recurrence.py builds and
// registers it). What XLA:CPU runs as a while loop of separate single-threaded kernels per step (the
// step's GEMM, the gate math, the stacking of outputs, the loop's own bookkeeping) is here one loop
// over time in which each thread owns a slice of the hidden units: their columns of every gate (the
// weights packed once per call into 16-column panels that stay in its caches), their cell state, their
// outputs. A step is a register-tiled GEMM of [x_t, h_{t-1}] by the thread's panels, the gate math of
// its units in 16-float vectors, and one barrier. Given 8 rows a thread, the threads split the batch
// instead (`row_chunks`, see `Split`): each runs its rows' recurrences alone, with no barrier, taking
// chunks of rows from a queue until none is left. The backward runs the same way over the stored
// pre-activations, then forms the weight gradients as one batched GEMM over all steps, as cuDNN's RNN
// backward does (Appleyard, Kocisky & Blunsom 2016, arXiv:1604.01946), on the same threads, which split
// its output columns.
//
// Layouts (row-major, time-major): xs [T, B, I]; w_ih [I, W*H], w_hh [H, W*H] and the bias [W*H] with
// the W gate blocks side by side in PyTorch's order (LSTM: i, f, g, o; GRU: r, z, n); zs / dzs
// [T, B, G*H], the pre-activation blocks of the cell (G = W but for the GRU, whose candidate keeps its
// input and recurrent halves apart); h, c [B, H]; H a multiple of 16.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#endif
#include <vector>

#include <sys/mman.h>

#include "vmath.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kUnits = 16;  // units per block: one vector, one panel of 16 columns per gate

// ---------------------------------------------------------------- threads

class SpinBarrier {
 public:
  void reset(int n) { n_ = n; }
  void wait() {
    if (n_ == 1) return;
    const int gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) == n_ - 1) {
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) relax(spins);
  }
  // spin first (a step is microseconds), then yield: with more threads than free cores (pytest
  // workers, a busy machine) a pure spin would burn the time slice of the thread it waits for
  static void relax(int spins) {
    if (spins < 20000) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }

 private:
  int n_ = 1;
  alignas(64) std::atomic<int> count_{0};
  alignas(64) std::atomic<int> gen_{0};
};

using Body = std::function<void(int thread, int threads, SpinBarrier& barrier)>;

// The core a thread runs on, -1 where unknown
int current_cpu() {
#ifdef __linux__
  return sched_getcpu();
#else
  return -1;
#endif
}

// Moves the calling helper off the caller's core for its lifetime, if it runs there. A pool thread that
// was parked (the previous call ended milliseconds ago) wakes where Linux puts a wakee, near its waker:
// often the caller's own core, and the balancer takes milliseconds to move it. Both threads then share
// one core at half speed while the other core idles (seen with sched_getcpu on this 2-core VM). So a
// helper that finds itself on the caller's core drops that core from its affinity (the kernel migrates
// it at once, ~80 us) and restores its affinity when it leaves. LSTM (32,128,32,128) forward, called
// every 20 ms: median 9.24 -> 6.68 ms (4.4 back to back, where it changes nothing).
class OffCallersCore {
 public:
  explicit OffCallersCore(int caller_cpu) {
#ifdef __linux__
    if (caller_cpu < 0 || current_cpu() != caller_cpu) return;
    if (pthread_getaffinity_np(pthread_self(), sizeof(saved_), &saved_) != 0) return;
    cpu_set_t others = saved_;
    CPU_CLR(caller_cpu, &others);
    moved_ = CPU_COUNT(&others) > 0 && pthread_setaffinity_np(pthread_self(), sizeof(others), &others) == 0;
#endif
  }
  ~OffCallersCore() {
#ifdef __linux__
    if (moved_) pthread_setaffinity_np(pthread_self(), sizeof(saved_), &saved_);
#endif
  }
  OffCallersCore(const OffCallersCore&) = delete;
  OffCallersCore& operator=(const OffCallersCore&) = delete;

 private:
#ifdef __linux__
  cpu_set_t saved_;
#endif
  bool moved_ = false;
};

// The threads of one call: the caller and whichever helpers of XLA's intra-op pool join in time (or,
// with `run_open`, before the work runs out). A
// helper that starts after the caller has closed the team (the pool was busy) leaves at once, so a
// busy pool costs parallelism, never a deadlock; the team lives on the heap for such late helpers.
class Team {
 public:
  static constexpr int kClosed = 1 << 30;

  void help() {
    if (std::this_thread::get_id() == caller_) return;  // the pool ran the task inline
    int s = joined_.load(std::memory_order_acquire);
    do {
      if (s & kClosed) return;
    } while (!joined_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel));
    int n;
    for (int spins = 0; (n = go_.load(std::memory_order_acquire)) == 0; ++spins) SpinBarrier::relax(spins);
    const OffCallersCore off(caller_cpu_);
    (*body_)((s & ~kClosed) + 1, n, barrier_);
    finished_.fetch_add(1, std::memory_order_release);
  }

  // Runs body(thread, threads, barrier) on the caller and the helpers that joined within `wait`.
  void run(int helpers_asked, std::chrono::microseconds wait, const Body& body) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (int spins = 0; (joined_.load(std::memory_order_acquire) & ~kClosed) < helpers_asked &&
                        std::chrono::steady_clock::now() < deadline;
         ++spins)
      SpinBarrier::relax(spins);
    const int n = close();
    barrier_.reset(n);
    body_ = &body;
    go_.store(n, std::memory_order_release);
    body(0, n, barrier_);
    wait_for_helpers(n);
  }

  // Runs body on the caller at once and on every helper that starts before the caller runs out of
  // work, for a body that takes its work from a queue (`Split` by rows): a helper the pool starts late
  // (waking a parked thread took 0.5-4.5 ms here, often after a pause between calls) still takes what
  // is left, where a closed team gives up on it after 500 us and runs the whole pass on one thread.
  // LSTM (32,128,32,128) forward called every 20 ms, median: closed team 9.26 ms, open 7.83, open with
  // 8-row chunks 6.80 (level back to back). The body is told `helpers_asked + 1` threads and must not
  // meet at the barrier.
  void run_open(int helpers_asked, const Body& body) {
    body_ = &body;
    go_.store(helpers_asked + 1, std::memory_order_release);
    body(0, helpers_asked + 1, barrier_);
    wait_for_helpers(close());
  }

 private:
  // Lets no more helpers join; the number of threads in the team, the caller included
  int close() { return 1 + (joined_.fetch_or(kClosed, std::memory_order_acq_rel) & ~kClosed); }
  void wait_for_helpers(int n) {
    for (int spins = 0; finished_.load(std::memory_order_acquire) < n - 1; ++spins) SpinBarrier::relax(spins);
  }

  const std::thread::id caller_ = std::this_thread::get_id();
  const int caller_cpu_ = current_cpu();  // where the caller ran when it scheduled the helpers
  const Body* body_ = nullptr;
  SpinBarrier barrier_;
  alignas(64) std::atomic<int> joined_{0};
  alignas(64) std::atomic<int> go_{0};
  alignas(64) std::atomic<int> finished_{0};
};

// `open`: the body takes its work from a queue, so helpers may join late (Team::run_open)
void run_threads(ffi::ThreadPool& pool, int wanted, bool open, const Body& body) {
  auto team = std::make_shared<Team>();
  const int helpers = std::max(0, std::min<int>(wanted, static_cast<int>(pool.num_threads())) - 1);
  for (int i = 0; i < helpers; ++i) pool.Schedule([team] { team->help(); });
  if (open)
    team->run_open(helpers, body);
  else
    team->run(helpers, std::chrono::microseconds(500), body);
}

// Asks the kernel to back the 2 MiB pages inside a fresh output with huge pages. XLA allocates a large
// output anew each call (glibc then maps it fresh from the OS), and its first touch faults in every 4 KiB
// page: at (16,512,64,256) that made a forward that saves its pre-activations 40 ms instead of 27.
// Only the aligned interior is advised, memory of this buffer alone; where THP is off it is a no-op.
void advise_huge_pages(void* data, size_t bytes) {
  constexpr uintptr_t kHuge = 2u << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHuge - 1);
#ifdef MADV_HUGEPAGE
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
}

struct Slice {  // a thread's unit blocks [begin, end)
  int begin, end;
  int count() const { return end - begin; }
};
Slice slice_of(int thread, int threads, int blocks) {
  return {blocks * thread / threads, blocks * (thread + 1) / threads};
}

// How the threads of one pass share its work. Split by units (row_chunks 0), thread i of n owns the
// i-th slice of the unit blocks for every row: it holds 1/n of the weights in its caches, but every
// step's GEMM reads all of h_{t-1}, so the threads meet at a barrier each step and half of each step's
// operand comes from the other core. Split by rows, each thread holds all of the weights and takes
// chunks of rows from a queue, running each chunk's recurrence over all steps alone: no barrier, no
// shared data, the better split when a step is short (microseconds) and the weights fit a core's L2.
// A row's arithmetic is the same whichever thread or chunk runs it, so every split gives the same bits.
class Split {
 public:
  Split(int B, int H, int row_chunks) : B_(B), blocks_(H / kUnits), chunks_(row_chunks) {}
  bool by_rows() const { return chunks_ > 0; }
  Slice units(int thread, int threads) const { return by_rows() ? Slice{0, blocks_} : slice_of(thread, threads, blocks_); }
  bool shared(int threads) const { return !by_rows() && threads > 1; }  // whether threads meet after each step
  // false once split by rows every chunk is taken: a helper that joins then packs no weights
  bool work_left() const { return !by_rows() || next_.load(std::memory_order_relaxed) < chunks_; }
  // rows_fn(rows) for each slice of rows the calling thread computes: all of them split by units, else
  // the chunks it takes before the queue runs dry
  template <typename RowsFn>
  void for_each_rows(RowsFn&& rows_fn) {
    if (!by_rows()) return rows_fn(Slice{0, B_});
    for (int c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_;) {
      rows_fn(slice_of(c, chunks_, B_));
      done_.fetch_add(1, std::memory_order_release);
    }
  }
  // Returns once every row's pass is done: split by rows, when the last chunk is; split by units, when
  // the `threads` threads, which all run every step, meet at the barrier
  void wait_for_all_rows(SpinBarrier& barrier, int threads) const {
    if (!by_rows()) {
      if (shared(threads)) barrier.wait();
      return;
    }
    for (int spins = 0; done_.load(std::memory_order_acquire) < chunks_; ++spins) SpinBarrier::relax(spins);
  }

 private:
  const int B_, blocks_, chunks_;
  std::atomic<int> next_{0};
  alignas(64) std::atomic<int> done_{0};
};

// ---------------------------------------------------------------- GEMM

// The A operand of a step's GEMM: up to two row-major pieces side by side, [x_t, h_{t-1}] in the
// forward (so the input projection needs no [T, B, G*H] buffer of its own), dz_t alone in the backward.
struct Operand {
  const float* a1;
  int lda1, K1;
  const float* a2;
  int lda2, K2;
  Operand rows_from(int r) const {
    return {a1 ? a1 + static_cast<size_t>(r) * lda1 : nullptr, lda1, K1, a2 + static_cast<size_t>(r) * lda2, lda2, K2};
  }
};

// out[r, cols[q] : +16] = init[r * ldi + cols[q] : +16] (or 0) + A[r, :] @ panel q, for MR rows and
// NP panels, each panel [K1 + K2][16] floats, consecutive panels (K1 + K2) * 16 floats apart.
template <int MR, int NP>
void tile(const Operand& A, const float* panels, const int* cols, const float* init, int ldi, float* out, int ld) {
  const int K = A.K1 + A.K2;
  v16 acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) acc[r][q] = init ? load16(init + r * ldi + cols[q]) : splat(0.0f);
  auto accumulate = [&](const float* a, int lda, int k0, int k1) {
    for (int k = k0; k < k1; ++k) {
      v16 w[NP];
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) w[q] = load16(panels + (static_cast<size_t>(q) * K + k) * kUnits);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) {
        const v16 x = splat(a[r * lda + k - k0]);
#pragma GCC unroll 8
        for (int q = 0; q < NP; ++q) acc[r][q] += x * w[q];
      }
    }
  };
  if (A.K1) accumulate(A.a1, A.lda1, 0, A.K1);
  accumulate(A.a2, A.lda2, A.K1, K);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) store16(out + r * ld + cols[q], acc[r][q]);
}

// MR rows by `np` panels: as many panels per tile as keep ~16 accumulators in registers
template <int MR>
void row_block(const Operand& A, const float* panels, int np, const int* cols, const float* init, int ldi, float* out,
               int ld) {
  constexpr int kWide = MR <= 2 ? 8 : MR <= 4 ? 4 : 2;
  const size_t stride = static_cast<size_t>(A.K1 + A.K2) * kUnits;
  int p = 0;
  for (; p + kWide <= np; p += kWide) tile<MR, kWide>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  if constexpr (kWide > 4)
    for (; p + 4 <= np; p += 4) tile<MR, 4>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  if constexpr (kWide > 2)
    for (; p + 2 <= np; p += 2) tile<MR, 2>(A, panels + p * stride, cols + p, init, ldi, out, ld);
  for (; p < np; ++p) tile<MR, 1>(A, panels + p * stride, cols + p, init, ldi, out, ld);
}

// out[:rows, cols] = init + A[:rows] @ panels (ldi = 0: one init row, a bias, for every row). Panels
// are taken in chunks that fit a core's L2 and each chunk serves every row before the next is read.
void gemm(int rows, const Operand& A, const float* panels, int np, const int* cols, const float* init, int ldi,
          float* out, int ld) {
  const int K = A.K1 + A.K2;
  const size_t panel_bytes = static_cast<size_t>(K) * kUnits * sizeof(float);
  const int chunk = std::max<int>(8, static_cast<int>((512 * 1024) / panel_bytes) / 8 * 8);
  for (int p0 = 0; p0 < np; p0 += chunk) {
    const int n = std::min(chunk, np - p0);
    const float* pp = panels + static_cast<size_t>(p0) * K * kUnits;
    for (int r = 0; r < rows; r += 8) {
      const int m = std::min(8, rows - r);
      const Operand Ar = A.rows_from(r);
      const float* ir = init ? init + static_cast<size_t>(r) * ldi : nullptr;
      float* orow = out + static_cast<size_t>(r) * ld;
      switch (m) {
        case 1: row_block<1>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 2: row_block<2>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 3: row_block<3>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 4: row_block<4>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 5: row_block<5>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 6: row_block<6>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        case 7: row_block<7>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
        default: row_block<8>(Ar, pp, n, cols + p0, ir, ldi, orow, ld); break;
      }
    }
  }
}

// ---------------------------------------------------------------- weight gradients

// out[m, :16 NP] = (first ? 0 : out) + sum_k a[k * lda + m] d[k * ldd : +16 NP] for MR rows m: the
// transposed product A^T D of the weight gradients, A read down its columns where it lies (no transposed
// copy). lda 0 with a pointing at a 1 sums D's rows (a bias gradient).
template <int MR, int NP>
void gradient_tile(const float* a, int lda, const float* d, int ldd, int K, float* out, int ldo, bool first) {
  v16 acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) acc[r][q] = first ? splat(0.0f) : load16(out + r * ldo + q * kUnits);
  for (int k = 0; k < K; ++k) {
    v16 w[NP];
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) w[q] = load16(d + static_cast<size_t>(k) * ldd + q * kUnits);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const v16 x = splat(a[static_cast<size_t>(k) * lda + r]);
#pragma GCC unroll 8
      for (int q = 0; q < NP; ++q) acc[r][q] += x * w[q];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) store16(out + r * ldo + q * kUnits, acc[r][q]);
}

template <int MR>
void gradient_rows(const float* a, int lda, const float* d, int ldd, int K, int np, float* out, int ldo, bool first) {
  int p = 0;
  for (; p + 4 <= np; p += 4) gradient_tile<MR, 4>(a, lda, d + p * kUnits, ldd, K, out + p * kUnits, ldo, first);
  for (; p + 2 <= np; p += 2) gradient_tile<MR, 2>(a, lda, d + p * kUnits, ldd, K, out + p * kUnits, ldo, first);
  if (p < np) gradient_tile<MR, 1>(a, lda, d + p * kUnits, ldd, K, out + p * kUnits, ldo, first);
}

// One weight gradient, out [M, ldo] = A^T D over the K rows of A and D, D either the gradients of the input
// projection dU or of the recurrent product dHH. A's row k is `first` + k lda before row `split`, `second`
// + (k - split) lda from there: h_{t-1} is h0 for one step's rows and hs, a step away, for the others.
struct GradientPiece {
  int M, lda;
  const float* first;
  int split;
  const float* second;
  bool of_dhh;
  float* out;
  int ldo;
  const float* row(int k) const {
    return k < split ? first + static_cast<size_t>(k) * lda : second + static_cast<size_t>(k - split) * lda;
  }
};

// The weight gradients of a backward pass: `pieces` over the K rows of dus and dhhs [K, ldd] (the same
// array but for the GRU), all of whose A switch rows at `split` or not at all.
struct GradientJob {
  std::vector<GradientPiece> pieces;
  const float* dus;
  const float* dhhs;
  int K, ldd, split;
};

// Columns [16 p0, 16 (p0 + np)) of every piece, K in blocks: each block's rows of dU (and dHH) are first
// copied side by side into `packed` (D's own rows lie W*H floats apart, and so many of them fall into the
// same few sets of L1 that they would not stay there), where they stay in L1 while every 6 rows of every
// piece's output pass over them. Each output is summed over K in one fixed order, so the bits do not
// depend on the threads.
void gradient_columns(const GradientJob& job, int p0, int np, std::vector<float>& packed) {
  const int width = np * kUnits, block = std::max(16, (16 << 10) / (width * static_cast<int>(sizeof(float))));
  const int c0 = p0 * kUnits;
  const bool two = job.dhhs != job.dus;
  packed.resize(static_cast<size_t>(two ? 2 : 1) * block * width);
  auto pack = [&](const float* d, int k0, int K, float* to) {
    for (int k = 0; k < K; ++k)
      std::memcpy(to + static_cast<size_t>(k) * width, d + static_cast<size_t>(k0 + k) * job.ldd + c0, width * sizeof(float));
  };
  for (const auto [begin, end] : {std::pair{0, job.split}, std::pair{job.split, job.K}})
    for (int k0 = begin; k0 < end; k0 += block) {  // no block crosses `split`
      const int K = std::min(block, end - k0);
      float* const pack_u = packed.data();
      float* const pack_hh = two ? pack_u + static_cast<size_t>(block) * width : pack_u;
      pack(job.dus, k0, K, pack_u);
      if (two) pack(job.dhhs, k0, K, pack_hh);
      for (const GradientPiece& g : job.pieces) {
        const float* d = g.of_dhh ? pack_hh : pack_u;
        for (int m0 = 0; m0 < g.M; m0 += 6) {
          const float* a = g.row(k0) + (g.lda ? m0 : 0);
          float* out = g.out + static_cast<size_t>(m0) * g.ldo + c0;
          const bool first = k0 == 0;
          switch (std::min(6, g.M - m0)) {
            case 1: gradient_rows<1>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
            case 2: gradient_rows<2>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
            case 3: gradient_rows<3>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
            case 4: gradient_rows<4>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
            case 5: gradient_rows<5>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
            default: gradient_rows<6>(a, g.lda, d, width, K, np, out, g.ldo, first); break;
          }
        }
      }
    }
  if (job.K == 0)  // no rows at all
    for (const GradientPiece& g : job.pieces)
      for (int m = 0; m < g.M; ++m) std::fill_n(g.out + static_cast<size_t>(m) * g.ldo + c0, width, 0.0f);
}

// The column panels of the weight gradients, handed out from a queue in items of 2-4 panels, about four
// items a thread: one-panel items ran at 68 GFLOP/s on one core here, two-panel ones at 96 (Elman
// (32,128,32,128), whose gradients have 8 panels)
class Columns {
 public:
  Columns(int panels, int threads)
      : panels_(panels), per_item_(std::clamp(panels / (4 * std::max(threads, 1)), std::min(2, panels), 4)) {}
  template <typename ItemFn>
  void for_each(ItemFn&& item_fn) {
    for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) * per_item_ < panels_;)
      item_fn(i * per_item_, std::min(per_item_, panels_ - i * per_item_));
  }

 private:
  const int panels_, per_item_;
  std::atomic<int> next_{0};
};

// ---------------------------------------------------------------- cells

// Which operand rows a group of the forward's panels multiplies: [x_t, h_{t-1}], x_t alone or h_{t-1} alone
enum Inputs { kXH, kX, kH };

// Weight columns of one thread's forward GEMM that share their operand: for each of the thread's unit
// blocks, 16-column panels taken from columns `src` of w_ih [I, W] above w_hh [H, W] (rows as `inputs`
// says) and written to columns `dst` of the step's pre-activations.
struct Group {
  Inputs inputs;
  std::vector<int> src, dst;
  std::vector<float> panels;
};

// A cell whose z_t is ONE GEMM of [x_t, h_{t-1}]: each of the thread's unit blocks in each of the G gates
void one_group(int G, int H, Slice s, std::vector<Group>& out) {
  out.assign(1, Group{kXH, {}, {}, {}});
  for (int j = s.begin; j < s.end; ++j)
    for (int g = 0; g < G; ++g) out[0].src.push_back(g * H + j * kUnits);
  out[0].dst = out[0].src;
}

// Each cell: its pre-activation blocks G (z_t is [B, G*H]) and weight blocks W (w_ih [I, W*H], w_hh
// [H, W*H]); groups(...) the thread's forward panels; forward(z, state_prev -> state, h) and
// backward(z, state_prev, dh, dc -> dz, dhh, d_state) on one 16-unit vector of one row, `z` pointing
// at the row's unit block of block 0, blocks H apart. dz is the gradient of z; dhh, that of h W_hh where
// it differs from dz (GRU only; else dz is both). The state is the LSTM's cell c, the GRU's h_{t-1}
// (whose direct path into h_t is d_state), or none.
struct Lstm {
  static constexpr int G = 4, W = 4;
  static constexpr bool kCell = true, kHPrev = false;
  static void groups(int H, Slice s, std::vector<Group>& out) { one_group(G, H, s, out); }
  static inline void forward(const float* z, int H, v16 c_prev, v16& c, v16& h) {
    const v16 i = vsigmoid(load16(z)), f = vsigmoid(load16(z + H)), g = vtanh(load16(z + 2 * H)),
              o = vsigmoid(load16(z + 3 * H));
    c = f * c_prev + i * g;
    h = o * vtanh(c);
  }
  static inline void backward(const float* z, int H, v16 c_prev, v16 dh, v16 dc, float* dz, float*, v16& dc_prev) {
    const v16 i = vsigmoid(load16(z)), f = vsigmoid(load16(z + H)), g = vtanh(load16(z + 2 * H)),
              o = vsigmoid(load16(z + 3 * H));
    const v16 c = f * c_prev + i * g, tc = vtanh(c);
    const v16 dct = dc + dh * o * (1.0f - tc * tc);
    store16(dz, dct * g * i * (1.0f - i));
    store16(dz + H, dct * c_prev * f * (1.0f - f));
    store16(dz + 2 * H, dct * i * (1.0f - g * g));
    store16(dz + 3 * H, dh * tc * o * (1.0f - o));
    dc_prev = dct * f;
  }
};

template <bool kRelu>
struct Elman {
  static constexpr int G = 1, W = 1;
  static constexpr bool kCell = false, kHPrev = false;
  static void groups(int H, Slice s, std::vector<Group>& out) { one_group(G, H, s, out); }
  static inline void forward(const float* z, int, v16, v16&, v16& h) {
    const v16 x = load16(z);
    h = kRelu ? vselect(x > 0.0f, x, splat(0.0f)) : vtanh(x);
  }
  static inline void backward(const float* z, int, v16, v16 dh, v16, float* dz, float*, v16&) {
    const v16 x = load16(z);
    if constexpr (kRelu) {
      store16(dz, vselect(x > 0.0f, dh, splat(0.0f)));
    } else {
      const v16 h = vtanh(x);
      store16(dz, dh * (1.0f - h * h));
    }
  }
};

// PyTorch's GRU (reset gate after the recurrent matmul): z_t = [a_r | a_z | x W_in + b_in | h W_hn + b_hn],
// the reset and update gates' pre-activations one GEMM of [x_t, h_{t-1}], the candidate's two halves
// apart because r multiplies only the second. The backward writes two gradients: du_t = [da_r | da_z |
// da_n] of x W_ih + b, and dhh_t = [da_r | da_z | r da_n] of h W_hh (+ b_hn), the operand of dh_{t-1}.
struct Gru {
  static constexpr int G = 4, W = 3;
  static constexpr bool kCell = false, kHPrev = true;
  static void groups(int H, Slice s, std::vector<Group>& out) {
    out.assign(3, Group{});
    out[0].inputs = kXH;
    out[1].inputs = kX;
    out[2].inputs = kH;
    for (int j = s.begin; j < s.end; ++j) {
      const int u = j * kUnits;
      for (int g = 0; g < 2; ++g) out[0].src.push_back(g * H + u);
      out[1].src.push_back(2 * H + u);
      out[2].src.push_back(2 * H + u);
      out[2].dst.push_back(3 * H + u);
    }
    out[0].dst = out[0].src;
    out[1].dst = out[1].src;
  }
  static inline void forward(const float* z, int H, v16 h_prev, v16&, v16& h) {
    const v16 r = vsigmoid(load16(z)), u = vsigmoid(load16(z + H));
    const v16 n = vtanh(load16(z + 2 * H) + r * load16(z + 3 * H));
    h = n + u * (h_prev - n);
  }
  static inline void backward(const float* z, int H, v16 h_prev, v16 dh, v16, float* du, float* dhh, v16& dh_direct) {
    const v16 r = vsigmoid(load16(z)), u = vsigmoid(load16(z + H)), hn = load16(z + 3 * H);
    const v16 n = vtanh(load16(z + 2 * H) + r * hn);
    const v16 dan = dh * (1.0f - u) * (1.0f - n * n);
    const v16 dar = dan * hn * r * (1.0f - r), daz = dh * (h_prev - n) * u * (1.0f - u);
    store16(du, dar);
    store16(du + H, daz);
    store16(du + 2 * H, dan);
    store16(dhh, dar);
    store16(dhh + H, daz);
    store16(dhh + 2 * H, dan * r);
    dh_direct = dh * u;
  }
};

// A group's panels, columns `src` of w_ih [I, ld] stacked on w_hh [H, ld] (the rows `inputs` selects)
void pack_group(const float* w_ih, const float* w_hh, int I, int H, int ld, Group& group) {
  const int K = (group.inputs != kH ? I : 0) + (group.inputs != kX ? H : 0);
  group.panels.assign(group.src.size() * K * kUnits, 0.0f);
  float* dst = group.panels.data();
  for (const int col : group.src) {
    if (group.inputs != kH)
      for (int k = 0; k < I; ++k, dst += kUnits) std::memcpy(dst, w_ih + static_cast<size_t>(k) * ld + col, 64);
    if (group.inputs != kX)
      for (int k = 0; k < H; ++k, dst += kUnits) std::memcpy(dst, w_hh + static_cast<size_t>(k) * ld + col, 64);
  }
}

// The backward's panels: w_hh^T [W*H, H], one panel per unit block of the thread (dh_{t-1} = dhh_t w_hh^T).
void pack_backward(const float* w, int H, int W, Slice s, std::vector<float>& panels, std::vector<int>& cols) {
  const int WH = W * H;
  panels.assign(static_cast<size_t>(s.count()) * WH * kUnits, 0.0f);
  cols.clear();
  float* dst = panels.data();
  for (int j = s.begin; j < s.end; ++j) {
    cols.push_back(j * kUnits);
    for (int n = 0; n < WH; ++n, dst += kUnits)
      for (int i = 0; i < kUnits; ++i) dst[i] = w[static_cast<size_t>(j * kUnits + i) * WH + n];
  }
}

// ---------------------------------------------------------------- the two passes

struct Steps {  // step s of the pass runs time index t(s); `reverse` runs the layer right to left
  int T;
  bool reverse;
  int t(int s) const { return reverse ? T - 1 - s : s; }
};

// hs[t] = h_t for all t, and c_last (LSTM); with zs (not null) each step's pre-activations and with
// c_prevs the cell state each step started from (what the backward reads). bias: [G*H], the columns of
// z_t it starts from.
template <typename Cell>
void forward_pass(const float* xs, const float* w_ih, const float* w_hh, const float* bias, const float* h0,
                  const float* c0, float* hs, float* c_last, float* zs, float* c_prevs, int T, int B, int I, int H,
                  bool reverse, int row_chunks, ffi::ThreadPool& pool, int threads) {
  constexpr int G = Cell::G;
  const int GH = G * H;
  const Steps steps{T, reverse};
  std::vector<float> scratch(zs ? 0 : static_cast<size_t>(B) * GH);
  std::vector<float> c(Cell::kCell ? static_cast<size_t>(B) * H : 0);
  const size_t steps_bytes = static_cast<size_t>(T) * B * H * sizeof(float);
  advise_huge_pages(hs, steps_bytes);
  if (zs) advise_huge_pages(zs, steps_bytes * G);
  if (c_prevs) advise_huge_pages(c_prevs, steps_bytes);
  Split split(B, H, row_chunks);
  run_threads(pool, threads, split.by_rows(), [&](int thread, int n, SpinBarrier& barrier) {
    if (!split.work_left()) return;
    const Slice s = split.units(thread, n);
    std::vector<Group> groups;
    Cell::groups(H, s, groups);
    for (Group& g : groups) pack_group(w_ih, w_hh, I, H, Cell::W * H, g);
    split.for_each_rows([&](Slice rows) {
      for (int b = rows.begin; b < rows.end && Cell::kCell; ++b)
        std::memcpy(&c[b * H + s.begin * kUnits], c0 + b * H + s.begin * kUnits, s.count() * kUnits * sizeof(float));
      for (int step = 0; step < T; ++step) {
        const int t = steps.t(step);
        const float* x_t = xs + static_cast<size_t>(t) * B * I;
        const float* h_prev = step == 0 ? h0 : hs + static_cast<size_t>(steps.t(step - 1)) * B * H;
        float* z = zs ? zs + static_cast<size_t>(t) * B * GH : scratch.data();
        for (const Group& g : groups) {
          const Operand a = g.inputs == kXH ? Operand{x_t, I, I, h_prev, H, H}
                            : g.inputs == kX ? Operand{nullptr, 0, 0, x_t, I, I}
                                             : Operand{nullptr, 0, 0, h_prev, H, H};
          gemm(rows.count(), a.rows_from(rows.begin), g.panels.data(), static_cast<int>(g.dst.size()), g.dst.data(),
               bias, 0, z + static_cast<size_t>(rows.begin) * GH, GH);
        }
        float* h_t = hs + static_cast<size_t>(t) * B * H;
        for (int b = rows.begin; b < rows.end; ++b)
          for (int j = s.begin; j < s.end; ++j) {
            const int u = b * H + j * kUnits;
            v16 c_new{}, h_new;
            const v16 state = Cell::kCell ? load16(&c[u]) : Cell::kHPrev ? load16(h_prev + u) : v16{};
            Cell::forward(z + static_cast<size_t>(b) * GH + j * kUnits, H, state, c_new, h_new);
            store16(h_t + u, h_new);
            if constexpr (Cell::kCell) {
              if (c_prevs) std::memcpy(c_prevs + static_cast<size_t>(t) * B * H + u, &c[u], 64);
              store16(&c[u], c_new);
            }
          }
        if (split.shared(n)) barrier.wait();  // every unit of h_t is written before any thread's next GEMM reads it
      }
      for (int b = rows.begin; b < rows.end && Cell::kCell; ++b)
        std::memcpy(c_last + b * H + s.begin * kUnits, &c[b * H + s.begin * kUnits], s.count() * kUnits * sizeof(float));
    });
  });
}

// The weight gradients a backward pass writes: dW_ih [I, W*H] = X^T dU, dW_hh [H, W*H] = H_prev^T dHH,
// db [W*H] = the column sums of dU and (GRU) db_hh [W*H] those of dHH, whose last block is b_hn's.
struct WeightGradients {
  float* w_ih;
  float* w_hh;
  float* b;
  float* b_hh;  // null but for the GRU
};

// The job of `grads` over the pass's rows: xs [T, B, I]; h_{t-1} from h0 [B, H] and hs [T, B, H]; dus
// [T, B, WH] (the gradients of the input projection) and dhhs (of h W_hh; dus but for the GRU)
GradientJob gradient_job(const float* xs, const float* hs, const float* h0, const float* dus, const float* dhhs,
                         const WeightGradients& grads, int T, int B, int I, int H, int WH, bool reverse) {
  static const float kOne = 1.0f;
  const int K = T * B;
  // h_{t-1}: forward, h0 for step 0 and hs[0 .. T-2] for steps 1 .. T-1; reverse, hs[1 .. T-1] for steps
  // 0 .. T-2 and h0 for step T-1
  const int split = T == 0 ? 0 : reverse ? K - B : B;
  const GradientPiece h_prev = reverse ? GradientPiece{H, H, hs + static_cast<size_t>(std::min(B, K)) * H, split, h0, true, grads.w_hh, WH}
                                       : GradientPiece{H, H, h0, split, hs, true, grads.w_hh, WH};
  GradientJob job{{GradientPiece{I, I, xs, K, nullptr, false, grads.w_ih, WH}, h_prev,
                   GradientPiece{1, 0, &kOne, K, nullptr, false, grads.b, WH}},
                  dus, dhhs, K, WH, split};
  if (grads.b_hh) job.pieces.push_back(GradientPiece{1, 0, &kOne, K, nullptr, true, grads.b_hh, WH});
  return job;
}

// dzs[t] = dL/dz_t (the GRU's: dL/du_t, with dL/d(h_{t-1} W_hh) in dhhs); dh0, dc0 = dL/dh_{-1}, dL/dc_{-1};
// and the weight gradients, summed over all steps once every dz_t is written, the threads splitting their
// columns. dys [T, B, H] are the outputs' cotangents, dh_last / dc_last the final carry's; xs, h0 and hs
// the forward's inputs, initial and hidden states; c_prevs [T, B, H] the LSTM's cell state each step
// started from (null for the others).
template <typename Cell>
void backward_pass(const float* xs, const float* hs, const float* h0, const float* zs, const float* c_prevs,
                   const float* dys, const float* dh_last, const float* dc_last, const float* w_hh, float* dzs,
                   float* dhhs, float* dh0, float* dc0, const WeightGradients& grads, int T, int B, int I, int H,
                   bool reverse, int row_chunks, ffi::ThreadPool& pool, int threads) {
  const int WH = Cell::W * H, GH = Cell::G * H;
  const Steps steps{T, reverse};
  std::vector<float> dh(static_cast<size_t>(B) * H), dc(Cell::kCell ? static_cast<size_t>(B) * H : 0);
  advise_huge_pages(dzs, static_cast<size_t>(T) * B * WH * sizeof(float));
  if (dhhs) advise_huge_pages(dhhs, static_cast<size_t>(T) * B * WH * sizeof(float));
  const GradientJob gradients = gradient_job(xs, hs, h0, dzs, dhhs ? dhhs : dzs, grads, T, B, I, H, WH, reverse);
  Split split(B, H, row_chunks);
  Columns columns(WH / kUnits, threads);
  run_threads(pool, threads, split.by_rows(), [&](int thread, int n, SpinBarrier& barrier) {
    if (split.work_left()) {
      const Slice s = split.units(thread, n);
      std::vector<float> panels;
      std::vector<int> cols;
      pack_backward(w_hh, H, Cell::W, s, panels, cols);
      const int width = s.count() * kUnits;
      split.for_each_rows([&](Slice rows) {
        for (int b = rows.begin; b < rows.end; ++b) {
          const int u0 = b * H + s.begin * kUnits;
          for (int k = 0; k < width; ++k) dh[u0 + k] = dh_last[u0 + k] + (T > 0 ? dys[static_cast<size_t>(steps.t(T - 1)) * B * H + u0 + k] : 0.0f);
          if constexpr (Cell::kCell) std::memcpy(&dc[u0], dc_last + u0, width * sizeof(float));
        }
        for (int step = T - 1; step >= 0; --step) {
          const int t = steps.t(step);
          const float* z = zs + static_cast<size_t>(t) * B * GH;
          float* dz = dzs + static_cast<size_t>(t) * B * WH;
          float* dhh = dhhs ? dhhs + static_cast<size_t>(t) * B * WH : dz;
          // the state step t started from: the LSTM's c_{t-1}, the GRU's h_{t-1}
          const float* prev = Cell::kCell   ? c_prevs + static_cast<size_t>(t) * B * H
                              : Cell::kHPrev ? (step == 0 ? h0 : hs + static_cast<size_t>(steps.t(step - 1)) * B * H)
                                             : nullptr;
          // dh_{t-1} = dy_{t-1} (none past the first step: the initial carry's gradient) + the direct path
          // (GRU) + dz_t w_hh^T; the thread's units of the first two replace dh_t here, the GEMM adds the last
          const float* dy_prev = step > 0 ? dys + static_cast<size_t>(steps.t(step - 1)) * B * H : nullptr;
          for (int b = rows.begin; b < rows.end; ++b)
            for (int j = s.begin; j < s.end; ++j) {
              const int u = b * H + j * kUnits;
              const size_t du = static_cast<size_t>(b) * WH + j * kUnits;
              v16 d_state{};
              Cell::backward(z + static_cast<size_t>(b) * GH + j * kUnits, H, prev ? load16(prev + u) : v16{},
                             load16(&dh[u]), Cell::kCell ? load16(&dc[u]) : v16{}, dz + du, dhh + du, d_state);
              if constexpr (Cell::kCell) store16(&dc[u], d_state);
              v16 next = dy_prev ? load16(dy_prev + u) : splat(0.0f);
              if constexpr (Cell::kHPrev) next += d_state;
              store16(&dh[u], next);
            }
          if (split.shared(n)) barrier.wait();  // every gate column of dz_t is written before any thread's GEMM reads it
          float* dh_rows = dh.data() + static_cast<size_t>(rows.begin) * H;
          gemm(rows.count(), Operand{nullptr, 0, 0, dhh + static_cast<size_t>(rows.begin) * WH, WH, WH}, panels.data(),
               static_cast<int>(cols.size()), cols.data(), dh_rows, H, dh_rows, H);
        }
        for (int b = rows.begin; b < rows.end; ++b) {
          const int u0 = b * H + s.begin * kUnits;
          std::memcpy(dh0 + u0, &dh[u0], width * sizeof(float));
          if constexpr (Cell::kCell) std::memcpy(dc0 + u0, &dc[u0], width * sizeof(float));
        }
      });
    }
    // the weight gradients read every row's dz: XLA ran this GEMM after the call on its own threads, which
    // woke cold (LSTM (32,128,32,128): 4.4 ms back to back, 8-9 ms timed among the peers)
    split.wait_for_all_rows(barrier, n);
    std::vector<float> packed;
    columns.for_each([&](int p0, int np) { gradient_columns(gradients, p0, np, packed); });
  });
}

// ---------------------------------------------------------------- FFI handlers

using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

// zs [T, B, G*H] against w_hh [H, W*H], the forward's xs [T, B, I], hs [T, B, H] and h0 [B, H]
ffi::Error check_backward_shapes(const F32& xs, const F32& hs, const F32& h0, const F32& zs, const F32& w_hh, int G,
                                 int W, int& T, int& B, int& I, int& H) {
  const auto zd = zs.dimensions(), wd = w_hh.dimensions(), xd = xs.dimensions(), hd = hs.dimensions();
  if (zd.size() != 3 || wd.size() != 2 || xd.size() != 3 || hd.size() != 3)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: expected xs [T, B, I], hs [T, B, H], zs [T, B, G*H] and w_hh [H, W*H]");
  T = static_cast<int>(zd[0]);
  B = static_cast<int>(zd[1]);
  I = static_cast<int>(xd[2]);
  H = static_cast<int>(wd[0]);
  if (wd[1] != static_cast<int64_t>(W) * H || zd[2] != static_cast<int64_t>(G) * H || H % kUnits != 0)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: w_hh must be [H, " + std::to_string(W) +
                                       "*H] with H a multiple of 16, and zs [T, B, " + std::to_string(G) + "*H]");
  if (xd[0] != T || xd[1] != B || hd[0] != T || hd[1] != B || hd[2] != H || h0.element_count() != static_cast<int64_t>(B) * H)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: xs [T, B, I], hs [T, B, H] and h0 [B, H] must match zs [T, B, G*H]");
  return ffi::Error::Success();
}

// xs [T, B, I] against w_ih [I, W*H], w_hh [H, W*H] and the bias [W*H]
ffi::Error check_forward_shapes(const F32& xs, const F32& w_ih, const F32& w_hh, const F32& b, int W, int& T, int& B,
                                int& I, int& H) {
  const auto xd = xs.dimensions(), id = w_ih.dimensions(), hd = w_hh.dimensions();
  if (xd.size() != 3 || id.size() != 2 || hd.size() != 2)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: expected xs [T, B, I], w_ih [I, W*H] and w_hh [H, W*H]");
  T = static_cast<int>(xd[0]);
  B = static_cast<int>(xd[1]);
  I = static_cast<int>(xd[2]);
  H = static_cast<int>(hd[0]);
  const int64_t WH = static_cast<int64_t>(W) * H;
  if (hd[1] != WH || id[0] != I || id[1] != WH || H % kUnits != 0 || b.element_count() != WH)
    return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: w_ih must be [I, " + std::to_string(W) + "*H], w_hh [H, " +
                                       std::to_string(W) + "*H] with H a multiple of 16, xs [T, B, I] and b [" +
                                       std::to_string(W) + "*H]");
  return ffi::Error::Success();
}

// row_chunks: 0 splits the work by units, else by rows into that many chunks (at most one a row)
int clamp_chunks(int64_t row_chunks, int B) { return static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(row_chunks, B))); }

// at most one thread per unit block, or per chunk of rows
int clamp_threads(int64_t threads, int H, int row_chunks) {
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, row_chunks > 0 ? row_chunks : H / kUnits)));
}

float* data_or_null(F32Out& out) { return out->element_count() > 0 ? out->typed_data() : nullptr; }

ffi::Error LstmForwardImpl(F32 xs, F32 w_ih, F32 w_hh, F32 b, F32 h0, F32 c0, F32Out hs, F32Out c_last, F32Out zs,
                           F32Out c_prevs, ffi::ThreadPool pool, bool reverse, int64_t threads, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_forward_shapes(xs, w_ih, w_hh, b, Lstm::W, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  forward_pass<Lstm>(xs.typed_data(), w_ih.typed_data(), w_hh.typed_data(), b.typed_data(), h0.typed_data(),
                     c0.typed_data(), hs->typed_data(), c_last->typed_data(), data_or_null(zs), data_or_null(c_prevs),
                     T, B, I, H, reverse, chunks, pool, clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

ffi::Error LstmBackwardImpl(F32 xs, F32 hs, F32 h0, F32 zs, F32 c_prevs, F32 dys, F32 dh_last, F32 dc_last, F32 w_hh,
                            F32Out dzs, F32Out dh0, F32Out dc0, F32Out dw_ih, F32Out dw_hh, F32Out db,
                            ffi::ThreadPool pool, bool reverse, int64_t threads, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_backward_shapes(xs, hs, h0, zs, w_hh, Lstm::G, Lstm::W, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  backward_pass<Lstm>(xs.typed_data(), hs.typed_data(), h0.typed_data(), zs.typed_data(), c_prevs.typed_data(),
                      dys.typed_data(), dh_last.typed_data(), dc_last.typed_data(), w_hh.typed_data(),
                      dzs->typed_data(), nullptr, dh0->typed_data(), dc0->typed_data(),
                      {dw_ih->typed_data(), dw_hh->typed_data(), db->typed_data(), nullptr}, T, B, I, H, reverse,
                      chunks, pool, clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

ffi::Error ElmanForwardImpl(F32 xs, F32 w_ih, F32 w_hh, F32 b, F32 h0, F32Out hs, F32Out zs, ffi::ThreadPool pool,
                            bool reverse, int64_t threads, bool relu, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_forward_shapes(xs, w_ih, w_hh, b, 1, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  auto run = relu ? forward_pass<Elman<true>> : forward_pass<Elman<false>>;
  run(xs.typed_data(), w_ih.typed_data(), w_hh.typed_data(), b.typed_data(), h0.typed_data(), nullptr,
      hs->typed_data(), nullptr, data_or_null(zs), nullptr, T, B, I, H, reverse, chunks, pool, clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

ffi::Error ElmanBackwardImpl(F32 xs, F32 hs, F32 h0, F32 zs, F32 dys, F32 dh_last, F32 w_hh, F32Out dzs, F32Out dh0,
                             F32Out dw_ih, F32Out dw_hh, F32Out db, ffi::ThreadPool pool, bool reverse, int64_t threads,
                             bool relu, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_backward_shapes(xs, hs, h0, zs, w_hh, 1, 1, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  auto run = relu ? backward_pass<Elman<true>> : backward_pass<Elman<false>>;
  run(xs.typed_data(), hs.typed_data(), h0.typed_data(), zs.typed_data(), nullptr, dys.typed_data(),
      dh_last.typed_data(), nullptr, w_hh.typed_data(), dzs->typed_data(), nullptr, dh0->typed_data(), nullptr,
      {dw_ih->typed_data(), dw_hh->typed_data(), db->typed_data(), nullptr}, T, B, I, H, reverse, chunks, pool,
      clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

ffi::Error GruForwardImpl(F32 xs, F32 w_ih, F32 w_hh, F32 b, F32 b_hn, F32 h0, F32Out hs, F32Out zs,
                          ffi::ThreadPool pool, bool reverse, int64_t threads, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_forward_shapes(xs, w_ih, w_hh, b, Gru::W, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  if (b_hn.element_count() != H) return ffi::Error::InvalidArgument("jaxrnn cpu recurrence: b_hn must be [H]");
  std::vector<float> bias(static_cast<size_t>(Gru::G) * H);  // z_t's blocks start from [b | b_hn]
  std::memcpy(bias.data(), b.typed_data(), sizeof(float) * Gru::W * H);
  std::memcpy(bias.data() + Gru::W * H, b_hn.typed_data(), sizeof(float) * H);
  forward_pass<Gru>(xs.typed_data(), w_ih.typed_data(), w_hh.typed_data(), bias.data(), h0.typed_data(), nullptr,
                    hs->typed_data(), nullptr, data_or_null(zs), nullptr, T, B, I, H, reverse, chunks, pool,
                    clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

ffi::Error GruBackwardImpl(F32 xs, F32 hs, F32 h0, F32 zs, F32 dys, F32 dh_last, F32 w_hh, F32Out dus, F32Out dhhs,
                           F32Out dh0, F32Out dw_ih, F32Out dw_hh, F32Out db, F32Out db_hh, ffi::ThreadPool pool,
                           bool reverse, int64_t threads, int64_t row_chunks) {
  int T, B, I, H;
  if (auto e = check_backward_shapes(xs, hs, h0, zs, w_hh, Gru::G, Gru::W, T, B, I, H); e.failure()) return e;
  const int chunks = clamp_chunks(row_chunks, B);
  backward_pass<Gru>(xs.typed_data(), hs.typed_data(), h0.typed_data(), zs.typed_data(), nullptr, dys.typed_data(),
                     dh_last.typed_data(), nullptr, w_hh.typed_data(), dus->typed_data(), dhhs->typed_data(),
                     dh0->typed_data(), nullptr,
                     {dw_ih->typed_data(), dw_hh->typed_data(), db->typed_data(), db_hh->typed_data()}, T, B, I, H,
                     reverse, chunks, pool, clamp_threads(threads, H, chunks));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmForward, LstmForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<int64_t>("row_chunks"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnLstmBackward, LstmBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<int64_t>("row_chunks"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnElmanForward, ElmanForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<bool>("relu").Attr<int64_t>("row_chunks"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnElmanBackward, ElmanBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<bool>("relu").Attr<int64_t>("row_chunks"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnGruForward, GruForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<int64_t>("row_chunks"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxrnnGruBackward, GruBackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Ctx<ffi::ThreadPool>()
                                  .Attr<bool>("reverse").Attr<int64_t>("threads").Attr<int64_t>("row_chunks"));
